import itertools

import pytest
import torch
import torch.nn.functional as F

from sandglass.loss import label_smoothed_cross_entropy


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
