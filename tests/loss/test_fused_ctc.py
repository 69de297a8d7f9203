import pytest
import torch
import torch.nn.functional as F

import sandglass.loss.fused_ctc
from sandglass.loss import ctc_loss, ctc_loss_from_features, ctc_loss_from_logits
from sandglass.models.sandglass import blank_gated_log_probs


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
    monkeypatch.setattr(sandglass.loss.fused_ctc, "_BLOCK_ELEMENTS", 2 * 9)  # two rows of the vocabulary at a time
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


def projection_case(dtype: torch.dtype = torch.float64, seed: int = 0):
    """ctc_case's sentences with features (B, T, d) and a projection onto its 9-label vocabulary."""
    _, output_mask, target, target_mask = ctc_case(seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    features = torch.randn(5, 12, 6, generator=generator, dtype=torch.float64).to(dtype)
    weight = torch.randn(9, 6, generator=generator, dtype=torch.float64).to(dtype)
    bias = torch.randn(9, generator=generator, dtype=torch.float64).to(dtype)
    return features, weight, bias, output_mask, target, target_mask


# 60 frames: one at a time, blocks across sentences, groups of 21 frames whose last block is short, all at once.
@pytest.mark.parametrize(("projection_rows", "blocks_per_product"), [(1, 1), (7, 1), (1, 8), (7, 3), (256, 4)])
def test_ctc_from_features_gives_the_loss_and_gradients_of_ctc_on_the_projection(
    monkeypatch, projection_rows, blocks_per_product
):
    monkeypatch.setattr(sandglass.loss.fused_ctc, "_PROJECTION_ROWS", projection_rows)
    monkeypatch.setattr(sandglass.loss.fused_ctc, "_BLOCKS_PER_PRODUCT", blocks_per_product)
    monkeypatch.setattr(sandglass.loss.fused_ctc, "_BLOCK_ELEMENTS", 3 * 9)  # normalized 3 rows at a time
    features, weight, bias, output_mask, target, target_mask = projection_case()
    scale = torch.rand(1, dtype=torch.float64) + 0.5
    inputs = [tensor.clone().requires_grad_(True) for tensor in (features, weight, bias)]
    reference = ctc_loss(F.linear(*inputs).log_softmax(dim=-1), output_mask, target, target_mask)
    (reference.loss * scale).backward()
    fast_inputs = [tensor.clone().requires_grad_(True) for tensor in (features, weight, bias)]
    fast = ctc_loss_from_features(*fast_inputs, output_mask, target, target_mask)
    (fast.loss * scale).backward()
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-12, rtol=0)
    assert fast.nll_sum == pytest.approx(reference.nll_sum, abs=1e-10)
    assert fast.num_tokens == reference.num_tokens == 14
    for fast_input, reference_input in zip(fast_inputs, inputs, strict=True):
        torch.testing.assert_close(fast_input.grad, reference_input.grad, atol=1e-12, rtol=0)
    assert torch.all(fast_inputs[0].grad[2] == 0)  # the infeasible sentence
    assert torch.all(fast_inputs[0].grad[~output_mask] == 0)


@pytest.mark.parametrize(("projection_rows", "blocks_per_product", "blank"), [(1, 1, 0), (7, 3, 0), (256, 4, 8)])
def test_ctc_from_features_with_a_blank_gate_gives_the_loss_and_gradients_of_ctc_on_the_gated_probabilities(
    monkeypatch, projection_rows, blocks_per_product, blank
):
    monkeypatch.setattr(sandglass.loss.fused_ctc, "_PROJECTION_ROWS", projection_rows)
    monkeypatch.setattr(sandglass.loss.fused_ctc, "_BLOCKS_PER_PRODUCT", blocks_per_product)
    features, weight, bias, output_mask, target, target_mask = projection_case(seed=3)
    target = torch.where(target_mask, target, 8) if blank == 8 else target
    # As in the model, the blank's column is left out of the softmax, so the gated probabilities sum to 1 (the
    # reference needs that: PyTorch's CTC backward assumes normalized log-probabilities).
    bias[blank] = -1e9
    blank_logits = torch.randn(5, 12, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    scale = torch.rand(1, dtype=torch.float64) + 0.5
    inputs = [tensor.clone().requires_grad_(True) for tensor in (features, weight, bias, blank_logits)]
    log_probs = blank_gated_log_probs(F.linear(*inputs[:3]), inputs[3], blank)
    reference = ctc_loss(log_probs, output_mask, target, target_mask, blank=blank)
    (reference.loss * scale).backward()
    fast_inputs = [tensor.clone().requires_grad_(True) for tensor in (features, weight, bias, blank_logits)]
    fast = ctc_loss_from_features(
        *fast_inputs[:3], output_mask, target, target_mask, blank=blank, blank_logits=fast_inputs[3]
    )
    (fast.loss * scale).backward()
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-12, rtol=0)
    for fast_input, reference_input in zip(fast_inputs, inputs, strict=True):
        torch.testing.assert_close(fast_input.grad, reference_input.grad, atol=1e-12, rtol=0)
    assert torch.all(fast_inputs[3].grad[~output_mask] == 0)
    assert torch.all(fast_inputs[1].grad[blank] == 0)  # the gate, not the blank's row, takes its occupancy


def test_ctc_from_features_without_bias_and_with_a_frozen_weight():
    features, weight, _, output_mask, target, target_mask = projection_case(seed=1)
    fast_features = features.clone().requires_grad_(True)
    fast = ctc_loss_from_features(fast_features, weight, None, output_mask, target, target_mask, blank=4)
    fast.loss.backward()
    reference_features = features.clone().requires_grad_(True)
    log_probs = F.linear(reference_features, weight).log_softmax(dim=-1)
    reference = ctc_loss(log_probs, output_mask, target, target_mask, blank=4)
    reference.loss.backward()
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-12, rtol=0)
    torch.testing.assert_close(fast_features.grad, reference_features.grad, atol=1e-12, rtol=0)


def test_ctc_from_features_under_bfloat16_autocast_follows_the_autocast_projection():
    features, weight, bias, output_mask, target, target_mask = projection_case(torch.float32, seed=2)
    results = []
    for loss_of in (
        lambda f, w, b: ctc_loss_from_logits(F.linear(f, w, b), output_mask, target, target_mask),
        lambda f, w, b: ctc_loss_from_features(f, w, b, output_mask, target, target_mask),
    ):
        inputs = [tensor.clone().requires_grad_(True) for tensor in (features, weight, bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = loss_of(*inputs)
        output.loss.backward()
        assert all(tensor.grad.dtype == torch.float32 for tensor in inputs)
        results.append((output.loss, [tensor.grad for tensor in inputs]))
    (reference_loss, reference_grads), (fast_loss, fast_grads) = results
    assert fast_loss.dtype == torch.float32
    torch.testing.assert_close(fast_loss, reference_loss, atol=1e-6, rtol=1e-6)
    for fast_grad, reference_grad in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(fast_grad, reference_grad, atol=1e-2, rtol=1e-2)


def test_ctc_from_features_names_a_mismatched_projection():
    features, weight, bias, output_mask, target, target_mask = projection_case()
    with pytest.raises(ValueError, match=r"features \(B, T, d\)"):
        ctc_loss_from_features(features[0], weight, bias, output_mask, target, target_mask)
    with pytest.raises(ValueError, match=r"weight \(V, d=6\)"):
        ctc_loss_from_features(features, weight[:, :4], bias, output_mask, target, target_mask)
    with pytest.raises(ValueError, match=r"bias \(V=9,\)"):
        ctc_loss_from_features(features, weight, bias[:5], output_mask, target, target_mask)
    with pytest.raises(ValueError, match=r"blank_logits \(B, T\) = \(5, 12\)"):
        blank_logits = torch.zeros(5, 11, dtype=torch.float64)
        ctc_loss_from_features(features, weight, bias, output_mask, target, target_mask, blank_logits=blank_logits)
    with pytest.raises(ValueError, match=r"blank_logits \(B, T\) = \(5, 12\)"):
        blank_logits = torch.zeros(5, 11, dtype=torch.float64)
        ctc_loss_from_features(features, weight, bias, output_mask, target, target_mask, blank_logits=blank_logits)
