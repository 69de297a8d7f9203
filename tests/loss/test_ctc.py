import itertools
import math

import pytest
import torch

from sandglass.loss import ctc_loss, ctc_loss_from_logits


def collapse(path: tuple[int, ...]) -> list[int]:
    labels, previous = [], None
    for symbol in path:
        if symbol != previous and symbol != 0:
            labels.append(symbol)
        previous = symbol
    return labels


def brute_force_ctc(log_probs: torch.Tensor, labels: list[int]) -> float:
    """-log of the summed probability of every frame path that collapses to ``labels``."""
    frames, vocab = log_probs.shape
    total = sum(
        math.exp(sum(log_probs[t, s].item() for t, s in enumerate(path)))
        for path in itertools.product(range(vocab), repeat=frames)
        if collapse(path) == labels
    )
    return -math.log(total)


def test_ctc_loss_agrees_with_summing_over_all_alignments():
    generator = torch.Generator().manual_seed(3)
    log_probs = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64).log_softmax(dim=-1)
    output_mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    target = torch.tensor([[1, 2, 2], [2, 0, 0]])
    target_mask = torch.tensor([[True, True, True], [True, False, False]])
    output = ctc_loss(log_probs, output_mask, target, target_mask)
    expected = brute_force_ctc(log_probs[0], [1, 2, 2]) + brute_force_ctc(log_probs[1, :4], [2])
    assert output.num_tokens == 4
    assert output.nll_sum == pytest.approx(expected, abs=1e-9)
    assert output.loss.item() == pytest.approx(expected / 4, abs=1e-9)


def test_ctc_loss_is_finite_for_an_impossible_target():
    log_probs = torch.randn(1, 2, 4, dtype=torch.float64).log_softmax(dim=-1).requires_grad_(True)
    target = torch.tensor([[1, 1, 2]])
    output = ctc_loss(log_probs, torch.ones(1, 2, dtype=torch.bool), target, torch.ones(1, 3, dtype=torch.bool))
    output.loss.backward()
    assert math.isfinite(output.loss.item()) and math.isfinite(output.nll_sum)
    assert torch.isfinite(log_probs.grad).all()


@pytest.mark.parametrize("loss_function", [ctc_loss, ctc_loss_from_logits])
def test_ctc_loss_rejects_mismatched_shapes(loss_function):
    log_probs = torch.randn(2, 4, 3).log_softmax(dim=-1)
    with pytest.raises(ValueError, match=r"output_mask \(B, T\)"):
        loss_function(
            log_probs,
            torch.ones(2, 3, dtype=torch.bool),
            torch.ones(2, 2, dtype=torch.long),
            torch.ones(2, 2, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match=r"target and target_mask of shape \(B=2, S\)"):
        loss_function(
            log_probs,
            torch.ones(2, 4, dtype=torch.bool),
            torch.ones(3, 2, dtype=torch.long),
            torch.ones(3, 2, dtype=torch.bool),
        )
