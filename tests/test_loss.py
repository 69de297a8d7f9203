import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import sandglass.loss
from sandglass.loss import ctc_loss, ctc_loss_from_logits, label_smoothed_cross_entropy


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


def ctc_case(dtype: torch.dtype = torch.float64, seed: int = 0):
    """Logits for 5 sentences: repeated labels (adjacent and apart), a padded output, an infeasible target
    (needs more frames than the output has) and an empty one."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 12, 9, generator=generator, dtype=torch.float64).to(dtype)
    target = torch.tensor([[3, 3, 5, 3, 1], [2, 4, 6, 0, 0], [7, 7, 7, 7, 0], [1, 2, 0, 0, 0], [0, 0, 0, 0, 0]])
    target_mask = target != 0
    output_mask = torch.arange(12)[None, :] < torch.tensor([12, 7, 6, 12, 3])[:, None]
    return logits, output_mask, target, target_mask


def test_ctc_from_logits_gives_the_loss_and_gradient_of_ctc_on_log_softmax():
    logits, output_mask, target, target_mask = ctc_case()
    weights = torch.rand(1, dtype=torch.float64) + 0.5  # a loss scale other than 1 reaches the gradient
    reference_logits = logits.clone().requires_grad_(True)
    reference = ctc_loss(reference_logits.log_softmax(dim=-1), output_mask, target, target_mask, blank=0)
    (reference.loss * weights).backward()
    fast_logits = logits.clone().requires_grad_(True)
    fast = ctc_loss_from_logits(fast_logits, output_mask, target, target_mask, blank=0)
    (fast.loss * weights).backward()
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-12, rtol=0)
    assert fast.nll_sum == pytest.approx(reference.nll_sum, abs=1e-10)
    assert fast.num_tokens == reference.num_tokens == 14
    torch.testing.assert_close(fast_logits.grad, reference_logits.grad, atol=1e-12, rtol=0)
    # The infeasible sentence (four 7s need seven frames, it has six) and padding frames get no gradient.
    assert torch.all(fast_logits.grad[2] == 0)
    assert torch.all(fast_logits.grad[~output_mask] == 0)


def test_ctc_from_logits_with_another_blank_and_blocks_smaller_than_a_frame(monkeypatch):
    monkeypatch.setattr(sandglass.loss, "_BLOCK_ELEMENTS", 2 * 9)  # two rows of the vocabulary at a time
    logits, output_mask, target, target_mask = ctc_case(seed=1)
    target = torch.where(target_mask, target, 8)
    reference_logits = logits.clone().requires_grad_(True)
    reference = ctc_loss(reference_logits.log_softmax(dim=-1), output_mask, target, target_mask, blank=8)
    reference.loss.backward()
    # A transposed view of a time-major tensor, as SandGlass gives its logits.
    fast_logits = logits.transpose(0, 1).contiguous().requires_grad_(True)
    fast = ctc_loss_from_logits(fast_logits.transpose(0, 1), output_mask, target, target_mask, blank=8)
    fast.loss.backward()
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-12, rtol=0)
    torch.testing.assert_close(fast_logits.grad.transpose(0, 1), reference_logits.grad, atol=1e-12, rtol=0)


def test_ctc_from_bfloat16_logits_is_computed_in_float32():
    logits, output_mask, target, target_mask = ctc_case(torch.bfloat16, seed=2)
    reference_logits = logits.float().requires_grad_(True)
    reference = ctc_loss(reference_logits.log_softmax(dim=-1), output_mask, target, target_mask)
    reference.loss.backward()
    fast_logits = logits.clone().requires_grad_(True)
    fast = ctc_loss_from_logits(fast_logits, output_mask, target, target_mask)
    fast.loss.backward()
    assert fast.loss.dtype == torch.float32 and fast_logits.grad.dtype == torch.bfloat16
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_logits.grad.float(), reference_logits.grad, atol=1e-2, rtol=1e-2)


def test_ctc_from_logits_can_write_the_gradient_over_the_logits():
    logits, output_mask, target, target_mask = ctc_case(seed=3)
    leaf = logits.clone().requires_grad_(True)
    reference = ctc_loss_from_logits(leaf * 1.0, output_mask, target, target_mask)
    reference.loss.backward()
    in_place_leaf = logits.clone().requires_grad_(True)
    # The logits as SandGlass's projection gives them: time-major, seen batch-first, not a leaf.
    produced = in_place_leaf.transpose(0, 1).contiguous().transpose(0, 1)
    fast = ctc_loss_from_logits(produced, output_mask, target, target_mask, gradient_in_place=True)
    fast.loss.backward(retain_graph=True)
    torch.testing.assert_close(fast.loss, reference.loss, atol=0, rtol=0)
    torch.testing.assert_close(in_place_leaf.grad, leaf.grad, atol=0, rtol=0)
    torch.testing.assert_close(produced, leaf.grad)  # the logits' memory now holds their gradient
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        fast.loss.backward()  # the saved logits are gone, and autograd says so
