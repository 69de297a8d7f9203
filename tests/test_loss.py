import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from sandglass.loss import ctc_loss, label_smoothed_cross_entropy


def logits_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64)
    target = torch.randint(1, 7, (3, 5), generator=generator)
    target_mask = torch.arange(5)[None, :] < torch.tensor([[5], [2], [4]])
    return logits, target.masked_fill(~target_mask, 0), target_mask


def test_smoothing_zero_equals_cross_entropy_over_real_tokens():
    logits, target, target_mask = logits_batch()
    output = label_smoothed_cross_entropy(logits, target, target_mask, smoothing=0.0)
    expected = F.cross_entropy(logits[target_mask], target[target_mask])
    torch.testing.assert_close(output.loss, expected)
    assert output.num_tokens == 11
    assert output.nll_sum == pytest.approx(expected.item() * 11)


def test_label_smoothing_agrees_with_a_loop():
    logits, target, target_mask = logits_batch(seed=1)
    smoothing, vocab = 0.1, logits.shape[-1]
    total, nll_sum, count = 0.0, 0.0, 0
    for b, t in itertools.product(range(3), range(5)):
        if not target_mask[b, t]:
            continue
        log_p = logits[b, t].log_softmax(dim=0)
        q = [smoothing / vocab + (1 - smoothing) * (v == target[b, t].item()) for v in range(vocab)]
        total += -sum(q[v] * log_p[v].item() for v in range(vocab))
        nll_sum += -log_p[target[b, t]].item()
        count += 1
    output = label_smoothed_cross_entropy(logits, target, target_mask, smoothing=smoothing)
    assert output.loss.item() == pytest.approx(total / count, abs=1e-10)
    assert output.nll_sum == pytest.approx(nll_sum, abs=1e-10)
    torch.testing.assert_close(
        output.loss, F.cross_entropy(logits[target_mask], target[target_mask], label_smoothing=smoothing)
    )


def test_padding_gets_no_gradient_and_empty_targets_give_zero():
    logits, target, target_mask = logits_batch(seed=2)
    logits.requires_grad_(True)
    label_smoothed_cross_entropy(logits, target, target_mask).loss.backward()
    assert torch.all(logits.grad[~target_mask] == 0)
    assert torch.all(logits.grad[target_mask].abs().sum(-1) > 0)
    empty = label_smoothed_cross_entropy(logits, target, torch.zeros_like(target_mask))
    assert empty.loss.item() == 0.0 and empty.num_tokens == 0


def test_label_smoothing_rejects_bad_arguments():
    logits, target, target_mask = logits_batch()
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothed_cross_entropy(logits, target, target_mask, smoothing=1.0)
    with pytest.raises(ValueError, match=r"target \(B, T\)"):
        label_smoothed_cross_entropy(logits, target[:, :3], target_mask)


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


def test_ctc_loss_rejects_mismatched_shapes():
    log_probs = torch.randn(2, 4, 3).log_softmax(dim=-1)
    with pytest.raises(ValueError, match=r"output_mask \(B, T\)"):
        ctc_loss(
            log_probs,
            torch.ones(2, 3, dtype=torch.bool),
            torch.ones(2, 2, dtype=torch.long),
            torch.ones(2, 2, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match=r"target and target_mask of shape \(B=2, S\)"):
        ctc_loss(
            log_probs,
            torch.ones(2, 4, dtype=torch.bool),
            torch.ones(3, 2, dtype=torch.long),
            torch.ones(3, 2, dtype=torch.bool),
        )
