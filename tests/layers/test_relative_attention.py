import math

import pytest
import torch

from sandglass.layers.relative_attention import RelativeAttention, RelativeAttention2d, relative_index_2d
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch

# (shaw, shaw_values, causal)
VARIANTS = [
    (False, False, False),
    (False, False, True),
    (True, False, False),
    (True, True, False),
    (True, True, True),
]


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.5)
    return module


def clip(offset: int, max_distance: int) -> int:
    return max(-max_distance, min(max_distance, offset))


def reference_attention(layer, x, mask):
    """RelativeAttention written out per sequence, head, query and key."""
    batch, length, dim = x.shape
    heads, max_distance = layer.num_heads, layer.max_distance
    head_dim = dim // heads
    qkv = x @ layer.qkv.weight.T + layer.qkv.bias
    q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
    out = torch.zeros_like(x)
    for b in range(batch):
        for h in range(heads):
            channels = slice(h * head_dim, (h + 1) * head_dim)
            for i in range(length):
                if not mask[b, i]:
                    continue
                keys = [j for j in range(length) if mask[b, j] and (j <= i or not layer.causal)]
                logits = []
                for j in keys:
                    if layer.key_offsets is None:
                        w = layer.relative_bias[h, clip(i - j, max_distance) + max_distance]
                        logits.append(q[b, i, channels] @ k[b, j, channels] / math.sqrt(head_dim) + w)
                    else:
                        a_k = layer.key_offsets[clip(j - i, max_distance) + max_distance]
                        logits.append(q[b, i, channels] @ (k[b, j, channels] + a_k) / math.sqrt(head_dim))
                weights = torch.softmax(torch.stack(logits), dim=0)
                for weight, j in zip(weights, keys, strict=True):
                    value = v[b, j, channels]
                    if layer.value_offsets is not None:
                        value = value + layer.value_offsets[clip(j - i, max_distance) + max_distance]
                    out[b, i, channels] += weight * value
    return (out @ layer.out.weight.T + layer.out.bias) * mask[..., None]


def make_layer(shaw, shaw_values, causal, dim=8, num_heads=2, max_distance=2):
    layer = RelativeAttention(
        dim, num_heads=num_heads, max_distance=max_distance, shaw=shaw, shaw_values=shaw_values, causal=causal
    )
    return randomize_(layer)


@pytest.mark.parametrize(("shaw", "shaw_values", "causal"), VARIANTS)
def test_relative_attention_matches_reference(shaw, shaw_values, causal):
    # max_distance 2 on length 7: most pairs are clipped.
    layer = make_layer(shaw, shaw_values, causal).double()
    x, mask = padded_batch([7, 4, 1], 8)
    torch.testing.assert_close(layer(x, mask), reference_attention(layer, x, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shaw", [False, True])
def test_relative_attention_beyond_max_distance(shaw):
    layer = make_layer(shaw, shaw, causal=False, max_distance=3).double()
    x, mask = padded_batch([30, 25], 8)
    out = layer(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference_attention(layer, x, mask), atol=1e-5, rtol=1e-5)


def test_relative_attention_float32_without_mask():
    layer = make_layer(False, False, causal=True)
    x = torch.randn(2, 6, 8)
    full = torch.ones(2, 6, dtype=torch.bool)
    torch.testing.assert_close(layer(x), reference_attention(layer, x, full), atol=1e-5, rtol=1e-5)


def test_relative_attention_without_gradients_keeps_the_bias_of_the_current_length_and_table():
    layer = make_layer(False, False, causal=False).double()
    for length in (7, 4, 4, 7):  # lengths in turn, as translation meets them
        x, mask = padded_batch([length, length - 1], 8)
        with torch.no_grad():
            torch.testing.assert_close(layer(x, mask), reference_attention(layer, x, mask), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        layer.relative_bias.mul_(-3.0)  # an in-place change, as an optimizer step makes
        torch.testing.assert_close(layer(x, mask), reference_attention(layer, x, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("shaw", "shaw_values", "causal"), VARIANTS)
def test_relative_attention_gradcheck(shaw, shaw_values, causal):
    layer = make_layer(shaw, shaw_values, causal, dim=4, max_distance=2)
    x, mask = padded_batch([5, 3], 4)
    assert_gradcheck(layer, x.clamp(max=3.0), mask)


@pytest.mark.parametrize(("shaw", "shaw_values", "causal"), VARIANTS)
def test_relative_attention_padding_invariant(shaw, shaw_values, causal):
    assert_padding_invariant(make_layer(shaw, shaw_values, causal, max_distance=3), channels=8)


@pytest.mark.parametrize("shaw", [False, True])
def test_relative_attention_causal(shaw):
    assert_causal(make_layer(shaw, shaw, causal=True), channels=8)
    with pytest.raises(AssertionError):
        assert_causal(make_layer(shaw, shaw, causal=False), channels=8)


def test_relative_attention_shapes():
    x, mask = padded_batch([6, 3], 12, dtype=torch.float32)
    layer = RelativeAttention(12, num_heads=3)
    y = layer(x, mask)
    assert y.shape == (2, 6, 12)
    assert torch.all(y[1, 3:] == 0)
    assert layer(x).shape == (2, 6, 12)
    assert layer.relative_bias.shape == (3, 129)
    shaw = RelativeAttention(12, num_heads=3, max_distance=5, shaw=True, shaw_values=True)
    assert shaw.key_offsets.shape == shaw.value_offsets.shape == (11, 4)
    assert shaw.relative_bias is None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"dim": 0, "num_heads": 1}, "dim"),
        ({"dim": 8, "num_heads": 0}, "num_heads"),
        ({"dim": 8, "num_heads": 3}, "num_heads"),
        ({"dim": 8, "num_heads": 2, "max_distance": 0}, "max_distance"),
        ({"dim": 8, "num_heads": 2, "shaw_values": True}, "shaw_values"),
        ({"dim": 8, "num_heads": 2, "dropout": 2.0}, "dropout"),
    ],
)
def test_relative_attention_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RelativeAttention(**kwargs)


def test_relative_attention_rejects_wrong_input():
    layer = RelativeAttention(8, num_heads=2)
    with pytest.raises(ValueError, match=r"\(B, T, C=8\)"):
        layer(torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        layer(torch.randn(2, 3, 6))


def test_relative_index_2d_matches_loop():
    height, width = 3, 4
    index = relative_index_2d(height, width)
    assert index.shape == (12, 12)
    for yi in range(height):
        for xi in range(width):
            for yj in range(height):
                for xj in range(width):
                    expected = (yi - yj + height - 1) * (2 * width - 1) + (xi - xj + width - 1)
                    assert index[yi * width + xi, yj * width + xj] == expected
    # Every 2-D offset has its own entry of the table.
    assert sorted(set(index.flatten().tolist())) == list(range((2 * height - 1) * (2 * width - 1)))


def reference_attention_2d(layer, x):
    """RelativeAttention2d written out per image, head and pair of pixels."""
    batch, dim, height, width = x.shape
    head_dim = dim // layer.num_heads
    pixels = [(row, col) for row in range(height) for col in range(width)]
    tokens = x.flatten(2).transpose(1, 2)
    qkv = tokens @ layer.qkv.weight.T + layer.qkv.bias
    q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
    out = torch.zeros_like(tokens)
    for b in range(batch):
        for h in range(layer.num_heads):
            channels = slice(h * head_dim, (h + 1) * head_dim)
            for i, (yi, xi) in enumerate(pixels):
                logits = []
                for j, (yj, xj) in enumerate(pixels):
                    entry = (yi - yj + height - 1) * (2 * width - 1) + (xi - xj + width - 1)
                    logits.append(
                        q[b, i, channels] @ k[b, j, channels] / math.sqrt(head_dim) + layer.relative_bias[h, entry]
                    )
                weights = torch.softmax(torch.stack(logits), dim=0)
                out[b, i, channels] = sum(weights[j] * v[b, j, channels] for j in range(len(pixels)))
    out = out @ layer.out.weight.T + layer.out.bias
    return out.transpose(1, 2).reshape(batch, dim, height, width)


def test_relative_attention_2d_matches_reference():
    layer = randomize_(RelativeAttention2d(4, num_heads=2, height=3, width=4)).double()
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_attention_2d(layer, x), atol=1e-5, rtol=1e-5)


def test_relative_attention_2d_gradcheck():
    layer = randomize_(RelativeAttention2d(4, num_heads=2, height=2, width=3))
    assert_gradcheck(layer, torch.randn(1, 4, 2, 3, dtype=torch.float64))


def test_relative_attention_2d_shapes():
    layer = RelativeAttention2d(6, num_heads=3, height=4, width=5)
    assert layer(torch.randn(2, 6, 4, 5)).shape == (2, 6, 4, 5)
    assert layer.relative_bias.shape == (3, 7 * 9)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"dim": 0, "num_heads": 1}, "dim"),
        ({"dim": 6, "num_heads": 4}, "num_heads"),
        ({"dim": 6, "num_heads": 3, "height": 0}, "height"),
        ({"dim": 6, "num_heads": 3, "width": 0}, "width"),
    ],
)
def test_relative_attention_2d_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RelativeAttention2d(**{"height": 2, "width": 2, **kwargs})


def test_relative_attention_2d_rejects_wrong_input():
    layer = RelativeAttention2d(4, num_heads=2, height=3, width=3)
    with pytest.raises(ValueError, match=r"\(B, C=4, H, W\)"):
        layer(torch.randn(2, 4, 9))
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        layer(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match=r"\(B, 4, 3, 3\)"):
        layer(torch.randn(2, 4, 3, 4))
