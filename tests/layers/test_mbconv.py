import math

import pytest
import torch
import torch.nn.functional as F

from sandglass.layers.mbconv import MBConv, MBConv2d
from tests.layers.properties import (
    assert_autocast_takes_reference,
    assert_causal,
    assert_checkpointing_exact,
    assert_gradcheck,
    assert_padding_invariant,
    padded_batch,
)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.5)
    return module


def layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def reference_mbconv(block, x, mask, kernel_size, causal):
    """MBConv recomputed from the block's weights, looping over the depthwise taps and over the sequences."""
    batch, length, _ = x.shape
    normed = layer_norm(x, block.norm.weight, block.norm.bias, block.norm.eps)
    hidden = F.gelu(normed @ block.expand.weight.T + block.expand.bias)
    hidden = hidden * mask[..., None]
    front = kernel_size - 1 if causal else math.ceil((kernel_size - 1) / 2)
    taps = block.depthwise.weight[:, 0, :]
    conv = block.depthwise.bias.expand(batch, length, -1).clone()
    for tap in range(kernel_size):
        for t in range(length):
            source = t - front + tap
            if 0 <= source < length:
                conv[:, t] += taps[:, tap] * hidden[:, source]
    hidden = F.gelu(conv)
    if block.se is not None:
        gated = torch.zeros_like(hidden)
        for b in range(batch):
            for t in range(length):
                seen = [s for s in range(length) if mask[b, s] and (s <= t or not causal)]
                summary = hidden[b, seen].mean(dim=0)
                se = block.se
                gate = torch.sigmoid(se.expand(F.gelu(se.reduce(summary))))
                gated[b, t] = hidden[b, t] * gate
        hidden = gated
    out = x + hidden @ block.project.weight.T + block.project.bias
    return out * mask[..., None]


@pytest.mark.parametrize(
    ("kernel_size", "causal", "squeeze_excitation"),
    [(3, False, True), (4, False, True), (4, True, True), (3, True, False), (1, False, True), (5, False, False)],
)
def test_mbconv_matches_reference(kernel_size, causal, squeeze_excitation):
    block = randomize_(
        MBConv(4, kernel_size=kernel_size, expand_ratio=2, squeeze_excitation=squeeze_excitation, causal=causal)
    ).double()
    x, mask = padded_batch([6, 4, 2], 4)
    torch.testing.assert_close(
        block(x, mask), reference_mbconv(block, x, mask, kernel_size, causal), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("causal", "squeeze_excitation", "masked"),
    [(False, True, True), (False, True, False), (False, False, True), (True, True, True)],
)
def test_mbconv_gradcheck(causal, squeeze_excitation, masked):
    block = randomize_(MBConv(4, kernel_size=3, expand_ratio=2, squeeze_excitation=squeeze_excitation, causal=causal))
    x, mask = padded_batch([5, 3], 4)
    if masked:
        assert_gradcheck(block, x.clamp(max=3.0), mask)
    else:
        assert_gradcheck(block, x.clamp(max=3.0))


@pytest.mark.parametrize(("kernel_size", "squeeze_excitation"), [(3, True), (5, True), (3, False)])
@pytest.mark.parametrize("masked", [True, False])
def test_mbconv_fused_path_matches_reference_forward(kernel_size, squeeze_excitation, masked):
    block = randomize_(MBConv(8, kernel_size=kernel_size, squeeze_excitation=squeeze_excitation)).double()
    x, mask = padded_batch([7, 4, 1], 8, seed=3)
    mask = mask if masked else None
    x.requires_grad_(True)
    grad_out = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    inputs = [x, *block.parameters()]
    fused = block(x, mask)
    reference = block.reference_forward(x, mask)
    torch.testing.assert_close(fused, reference, atol=1e-12, rtol=1e-12)
    fused_grads = torch.autograd.grad(fused, inputs, grad_out)
    reference_grads = torch.autograd.grad(reference, inputs, grad_out)
    for got, expected in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)


def test_mbconv_fused_path_handles_a_sequence_of_padding_only():
    block = randomize_(MBConv(4, expand_ratio=2))
    x, mask = padded_batch([3, 2], 4, dtype=torch.float32)
    mask[1] = False
    x.requires_grad_(True)
    out = block(x, mask)
    torch.testing.assert_close(out, block.reference_forward(x, mask))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[1] == 0).all()


@pytest.mark.parametrize(("kernel_size", "causal"), [(3, False), (4, False), (5, True)])
def test_mbconv_padding_invariant(kernel_size, causal):
    assert_padding_invariant(randomize_(MBConv(4, kernel_size=kernel_size, causal=causal)), channels=4)


def test_mbconv_causal():
    assert_causal(randomize_(MBConv(4, kernel_size=3, causal=True)), channels=4)


def test_mbconv_not_causal_by_default():
    with pytest.raises(AssertionError):
        assert_causal(randomize_(MBConv(4, kernel_size=3)), channels=4)


def test_mbconv_shapes():
    x, mask = padded_batch([7, 5], 6, dtype=torch.float32)
    y = MBConv(6)(x, mask)
    assert y.shape == (2, 7, 6)
    assert torch.all(y[1, 5:] == 0)
    assert MBConv(6)(x).shape == (2, 7, 6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"channels": 0}, "channels"),
        ({"channels": 4, "kernel_size": 0}, "kernel_size"),
        ({"channels": 4, "expand_ratio": 0}, "expand_ratio"),
        ({"channels": 4, "se_ratio": 0.0}, "se_ratio"),
        ({"channels": 4, "se_ratio": 1.5}, "se_ratio"),
        ({"channels": 4, "dropout": 1.5}, "dropout"),
    ],
)
def test_mbconv_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MBConv(**kwargs)


def test_mbconv_rejects_wrong_input():
    block = MBConv(4)
    with pytest.raises(ValueError, match=r"\(B, T, C=4\)"):
        block(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        block(torch.randn(2, 3, 5))


def reference_mbconv2d(block, x, kernel_size, stride):
    """MBConv2d (eval-mode batch norm) from the block's weights, with loops over taps and pooling cells."""
    batch, channels, height, width = x.shape
    norm = block.norm
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    normed = (x - norm.running_mean[:, None, None]) * scale[:, None, None] + norm.bias[:, None, None]
    hidden = F.gelu(
        torch.einsum("oc,bchw->bohw", block.expand.weight[:, :, 0, 0], normed) + block.expand.bias[:, None, None]
    )
    front = math.ceil((kernel_size - 1) / 2)
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    conv = block.depthwise.bias[None, :, None, None].expand(batch, -1, out_h, out_w).clone()
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            for oy in range(out_h):
                for ox in range(out_w):
                    row, col = oy * stride - front + dy, ox * stride - front + dx
                    if 0 <= row < height and 0 <= col < width:
                        conv[:, :, oy, ox] += block.depthwise.weight[:, 0, dy, dx] * hidden[:, :, row, col]
    hidden = F.gelu(conv)
    if block.se is not None:
        gate = torch.sigmoid(block.se.expand(F.gelu(block.se.reduce(hidden.mean(dim=(2, 3))))))
        hidden = hidden * gate[:, :, None, None]
    shortcut = torch.zeros(batch, channels, out_h, out_w, dtype=x.dtype)
    for oy in range(out_h):
        for ox in range(out_w):
            cell = x[:, :, oy * stride : (oy + 1) * stride, ox * stride : (ox + 1) * stride]
            shortcut[:, :, oy, ox] = cell.mean(dim=(2, 3))
    projected = torch.einsum("oc,bchw->bohw", block.project.weight[:, :, 0, 0], hidden)
    return shortcut + projected + block.project.bias[:, None, None]


@pytest.mark.parametrize(("kernel_size", "stride"), [(3, 1), (4, 1), (3, 2), (4, 2)])
def test_mbconv2d_matches_reference(kernel_size, stride):
    block = randomize_(MBConv2d(3, kernel_size=kernel_size, expand_ratio=2, stride=stride)).double().eval()
    with torch.no_grad():
        block.norm.running_mean.normal_()
        block.norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(block(x), reference_mbconv2d(block, x, kernel_size, stride), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_mbconv2d_gradcheck(stride):
    block = randomize_(MBConv2d(2, kernel_size=3, expand_ratio=2, stride=stride))
    assert_gradcheck(block, torch.randn(2, 2, 3, 3, dtype=torch.float64))


def test_mbconv2d_shapes():
    x = torch.randn(2, 4, 5, 7)
    assert MBConv2d(4)(x).shape == (2, 4, 5, 7)
    assert MBConv2d(4, stride=2, squeeze_excitation=False)(x).shape == (2, 4, 3, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"channels": 0}, "channels"),
        ({"channels": 4, "kernel_size": 0}, "kernel_size"),
        ({"channels": 4, "expand_ratio": 0}, "expand_ratio"),
        ({"channels": 4, "se_ratio": -0.5}, "se_ratio"),
        ({"channels": 4, "stride": 0}, "stride"),
    ],
)
def test_mbconv2d_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MBConv2d(**kwargs)


def test_mbconv2d_rejects_wrong_input():
    block = MBConv2d(4)
    with pytest.raises(ValueError, match=r"\(B, C=4, H, W\)"):
        block(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        block(torch.randn(2, 3, 5, 5))


def test_mbconv_under_autocast_takes_the_reference_path():
    assert_autocast_takes_reference(randomize_(MBConv(8, expand_ratio=2)), 8)


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_mbconv_under_activation_checkpointing(use_reentrant):
    assert_checkpointing_exact(lambda: randomize_(MBConv(4, expand_ratio=2)).double(), 4, use_reentrant=use_reentrant)
