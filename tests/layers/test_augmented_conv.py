"""Attention-augmented convolution: agreement with direct loops over the equations, properties, seed sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sandglass.layers.augmented_conv import (
    AugmentedAttention,
    AugmentedAttention2d,
    AugmentedConv,
    AugmentedConv2d,
)
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch

IN_CHANNELS = 3


def make_1d(kernel_size=3, causal=False, relative=True, max_length=5, **overrides) -> AugmentedConv:
    torch.manual_seed(0)
    settings = dict(dk=4, dv=4, num_heads=2, relative=relative, max_length=max_length, causal=causal)
    settings.update(overrides)
    return AugmentedConv(IN_CHANNELS, 7, kernel_size, **settings).double()


def make_2d(kernel_size=3, relative=True, height=3, width=4) -> AugmentedConv2d:
    torch.manual_seed(0)
    layer = AugmentedConv2d(
        IN_CHANNELS, 6, kernel_size, dk=4, dv=2, num_heads=2, relative=relative, height=height, width=width
    )
    return layer.double()


def softmax_weighted_sum(logits: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
    scores = torch.stack(logits)
    weights = torch.exp(scores - scores.max())
    weights = weights / weights.sum()
    return sum(weight * value for weight, value in zip(weights, values, strict=True))


def loop_attention_1d(attention: AugmentedAttention, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """The attention branch, one head, query and key at a time, with the relative term written out."""
    dk, dv, heads = attention.dk, attention.dv, attention.num_heads
    dkh, dvh = dk // heads, dv // heads
    table = attention.relative.table if attention.relative is not None else None
    out = torch.zeros(x.shape[0], x.shape[1], dv, dtype=x.dtype)
    for b, length in enumerate(lengths):
        qkv = x[b] @ attention.qkv.weight.T + attention.qkv.bias
        for i in range(length):
            head_outputs = []
            for h in range(heads):
                q = qkv[i, h * dkh : (h + 1) * dkh] * dkh**-0.5
                logits, values = [], []
                for j in range(length):
                    if attention.causal and j > i:
                        continue
                    logit = q @ qkv[j, dk + h * dkh : dk + (h + 1) * dkh]
                    if table is not None:
                        limit = attention.relative.max_distance - 1
                        offset = max(-limit, min(limit, j - i))
                        logit = logit + q @ table[offset + limit]
                    logits.append(logit)
                    values.append(qkv[j, 2 * dk + h * dvh : 2 * dk + (h + 1) * dvh])
                head_outputs.append(softmax_weighted_sum(logits, values))
            out[b, i] = torch.cat(head_outputs) @ attention.out.weight.T + attention.out.bias
    return out


def loop_conv_1d(conv: nn.Conv1d, x: torch.Tensor, lengths: list[int], pad_front: int) -> torch.Tensor:
    """``y[t, o] = b[o] + Σ_{c,k} W[o, c, k] · x[t + k - pad_front, c]``, zero outside the real positions."""
    out_channels, _, kernel_size = conv.weight.shape
    out = torch.zeros(x.shape[0], x.shape[1], out_channels, dtype=x.dtype)
    for b, length in enumerate(lengths):
        for t in range(length):
            total = conv.bias.clone()
            for k in range(kernel_size):
                source = t + k - pad_front
                if 0 <= source < length:
                    total = total + conv.weight[:, :, k] @ x[b, source]
            out[b, t] = total
    return out


def loop_attention_2d(attention: AugmentedAttention2d, x: torch.Tensor) -> torch.Tensor:
    """The 2-D attention branch pixel by pixel: ``q·k + q·E_w[x2-x1+W-1] + q·E_h[y2-y1+H-1]``."""
    batch, _, height, width = x.shape
    dk, dv, heads = attention.dk, attention.dv, attention.num_heads
    dkh, dvh = dk // heads, dv // heads
    relative = attention.relative_width is not None
    qkv_weight = attention.qkv.weight[:, :, 0, 0]
    out_weight = attention.out.weight[:, :, 0, 0]
    pixels = [(row, col) for row in range(height) for col in range(width)]
    out = torch.zeros(batch, dv, height, width, dtype=x.dtype)
    for b in range(batch):
        qkv = {p: qkv_weight @ x[b, :, p[0], p[1]] + attention.qkv.bias for p in pixels}
        for y1, x1 in pixels:
            head_outputs = []
            for h in range(heads):
                q = qkv[y1, x1][h * dkh : (h + 1) * dkh] * dkh**-0.5
                logits, values = [], []
                for y2, x2 in pixels:
                    logit = q @ qkv[y2, x2][dk + h * dkh : dk + (h + 1) * dkh]
                    if relative:
                        logit = logit + q @ attention.relative_width.table[x2 - x1 + width - 1]
                        logit = logit + q @ attention.relative_height.table[y2 - y1 + height - 1]
                    logits.append(logit)
                    values.append(qkv[y2, x2][2 * dk + h * dvh : 2 * dk + (h + 1) * dvh])
                head_outputs.append(softmax_weighted_sum(logits, values))
            out[b, :, y1, x1] = out_weight @ torch.cat(head_outputs) + attention.out.bias
    return out


def loop_conv_2d(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Same-size convolution with the larger half of the padding at the top and left."""
    batch, _, height, width = x.shape
    out_channels, _, kernel_size, _ = conv.weight.shape
    front = kernel_size // 2
    out = torch.zeros(batch, out_channels, height, width, dtype=x.dtype)
    for b in range(batch):
        for row in range(height):
            for col in range(width):
                total = conv.bias.clone()
                for dy in range(kernel_size):
                    for dx in range(kernel_size):
                        src_row, src_col = row + dy - front, col + dx - front
                        if 0 <= src_row < height and 0 <= src_col < width:
                            total = total + conv.weight[:, :, dy, dx] @ x[b, :, src_row, src_col]
                out[b, :, row, col] = total
    return out


# --- agreement with the loops ------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("relative", [True, False])
def test_attention_branch_matches_loop_1d(causal, relative):
    layer = make_1d(causal=causal, relative=relative)
    lengths = [6, 4]
    x, mask = padded_batch(lengths, IN_CHANNELS)
    expected = loop_attention_1d(layer.attention, torch.where(mask[..., None], x, 0.0), lengths)
    torch.testing.assert_close(layer.attention(x, mask), expected, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_size", [3, 4])
def test_output_matches_loop_1d(causal, kernel_size):
    layer = make_1d(kernel_size=kernel_size, causal=causal)
    lengths = [6, 4]
    x, mask = padded_batch(lengths, IN_CHANNELS)
    clean = torch.where(mask[..., None], x, 0.0)
    pad_front = kernel_size - 1 if causal else kernel_size // 2
    expected = torch.cat(
        [
            loop_conv_1d(layer.conv, clean, lengths, pad_front),
            loop_attention_1d(layer.attention, clean, lengths),
        ],
        dim=-1,
    )
    torch.testing.assert_close(layer(x, mask), expected, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("causal", [False, True])
def test_lengths_beyond_max_length_clip_the_offsets(causal):
    layer = make_1d(causal=causal, max_length=3)
    lengths = [9, 7]
    x, mask = padded_batch(lengths, IN_CHANNELS, seed=3)
    expected = loop_attention_1d(layer.attention, torch.where(mask[..., None], x, 0.0), lengths)
    torch.testing.assert_close(layer.attention(x, mask), expected, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("relative", [True, False])
def test_attention_branch_matches_loop_2d(relative):
    layer = make_2d(relative=relative)
    x = torch.randn(2, IN_CHANNELS, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(layer.attention(x), loop_attention_2d(layer.attention, x), atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("kernel_size", [3, 4])
def test_output_matches_loop_2d(kernel_size):
    layer = make_2d(kernel_size=kernel_size)
    x = torch.randn(2, IN_CHANNELS, 3, 4, dtype=torch.float64)
    expected = torch.cat([loop_conv_2d(layer.conv, x), loop_attention_2d(layer.attention, x)], dim=1)
    torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=1e-7)


# --- properties --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_1d(causal):
    layer = make_1d(kernel_size=2, causal=causal, max_length=2, dk=2, dv=2)
    x, mask = padded_batch([4, 3], IN_CHANNELS)
    assert_gradcheck(layer, x, mask)


def test_gradcheck_2d():
    torch.manual_seed(0)
    layer = AugmentedConv2d(2, 4, 2, dk=2, dv=2, num_heads=2, height=2, width=3)
    assert_gradcheck(layer, torch.randn(1, 2, 2, 3, dtype=torch.float64))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_size", [3, 4])
def test_padding_invariant(causal, kernel_size):
    assert_padding_invariant(make_1d(kernel_size=kernel_size, causal=causal), IN_CHANNELS)


def test_causal():
    assert_causal(make_1d(kernel_size=4, causal=True), IN_CHANNELS)


def test_non_causal_layer_sees_the_future():
    with pytest.raises(AssertionError):
        assert_causal(make_1d(kernel_size=4, causal=False), IN_CHANNELS)


def test_padding_positions_are_zero():
    x, mask = padded_batch([5, 2], IN_CHANNELS)
    out = make_1d(causal=True)(x, mask)
    assert torch.all(out[~mask] == 0)
    assert torch.all(out[mask].abs().sum(dim=-1) > 0)


# --- sizes -------------------------------------------------------------------------------------------------


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_seed_2d_example_parameter_counts():
    stem = nn.Conv2d(10, 10, 3, padding=1)
    layer = AugmentedConv2d(10, filters=20, kernel_size=5, dk=4, dv=4, num_heads=4, relative=True, height=32, width=32)
    assert count(stem) == 910
    assert count(layer.conv) == 4016
    assert count(layer.attention.qkv) == 132
    assert layer.attention.relative_width.table.shape == (63, 1)
    assert layer.attention.relative_height.table.shape == (63, 1)
    assert count(layer.attention.out) == 20
    assert count(stem) + count(layer) == 5204
    assert layer(stem(torch.ones(1, 10, 32, 32))).shape == (1, 20, 32, 32)


def test_seed_1d_example_parameter_counts():
    layer = AugmentedConv(10, filters=20, kernel_size=5, dk=4, dv=4, num_heads=4, relative=True, max_length=32)
    assert layer.attention.relative.table.shape == (63, 1)
    assert count(layer.attention.relative) == 63
    assert count(layer.conv) == 816
    assert count(layer.attention.qkv) == 132
    assert count(layer.attention.out) == 20
    assert count(layer) == 816 + 132 + 63 + 20
    assert layer(torch.ones(1, 32, 10)).shape == (1, 32, 20)


def test_without_relative_there_are_no_tables():
    assert make_1d(relative=False, max_length=None).attention.relative is None
    assert make_2d(relative=False, height=None, width=None).attention.relative_width is None


@pytest.mark.parametrize("length", [1, 5, 11])
def test_output_shape_1d(length):
    x, mask = padded_batch([length, 1], IN_CHANNELS)
    assert make_1d()(x, mask).shape == (2, length, 7)
    assert make_1d()(x).shape == (2, length, 7)


def test_output_shape_2d():
    assert make_2d(kernel_size=2)(torch.randn(2, IN_CHANNELS, 3, 4, dtype=torch.float64)).shape == (
        2,
        6,
        3,
        4,
    )
    unsized = make_2d(relative=False, height=None, width=None)
    assert unsized(torch.randn(1, IN_CHANNELS, 5, 2, dtype=torch.float64)).shape == (1, 6, 5, 2)


# --- validation --------------------------------------------------------------------------------------------

VALID = dict(in_channels=3, filters=8, kernel_size=3, dk=4, dv=4, num_heads=2)


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        (dict(dk=3), "dk"),
        (dict(dv=6, filters=12, num_heads=4), "dv"),
        (dict(dv=8), "dv"),
        (dict(dv=9), "dv"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(dk=0), "dk"),
        (dict(dv=0), "dv"),
        (dict(num_heads=0), "num_heads"),
        (dict(filters=0), "filters"),
        (dict(in_channels=0), "in_channels"),
    ],
)
@pytest.mark.parametrize("layer_class", [AugmentedConv, AugmentedConv2d])
def test_invalid_settings_name_the_parameter(layer_class, overrides, parameter):
    extent = dict(max_length=4) if layer_class is AugmentedConv else dict(height=4, width=4)
    with pytest.raises(ValueError, match=rf"^{parameter}\b"):
        layer_class(**{**VALID, **extent, **overrides})


@pytest.mark.parametrize(
    ("layer_class", "extent", "parameter"),
    [
        (AugmentedConv, dict(), "max_length"),
        (AugmentedConv, dict(max_length=0), "max_length"),
        (AugmentedConv2d, dict(width=4), "height"),
        (AugmentedConv2d, dict(height=4), "width"),
        (AugmentedConv2d, dict(height=4, width=-1), "width"),
    ],
)
def test_relative_needs_the_extent(layer_class, extent, parameter):
    with pytest.raises(ValueError, match=rf"^{parameter}\b"):
        layer_class(**VALID, relative=True, **extent)


def test_wrong_input_1d():
    layer = make_1d()
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected \(B, T, 3\)"):
        layer(torch.randn(2, 5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"mask of shape \(B, T\)"):
        layer(torch.randn(2, 5, 3, dtype=torch.float64), torch.ones(2, 4, dtype=torch.bool))


def test_wrong_input_2d():
    layer = make_2d()
    with pytest.raises(ValueError, match=r"\(B, C=3, H, W\)"):
        layer(torch.randn(3, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        layer(torch.randn(1, 2, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected \(B, 3, 3, 4\)"):
        layer(torch.randn(1, 3, 4, 3, dtype=torch.float64))
