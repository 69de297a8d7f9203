"""ReduceConv: one output per non-overlapping window, any length."""

import math

import pytest
import torch

from sandglass.layers.reduce_conv import ReduceConv
from tests.layers.properties import assert_gradcheck, assert_padding_invariant, padded_batch


def reduce_conv_loop(x: torch.Tensor, mask: torch.Tensor, layer: ReduceConv) -> torch.Tensor:
    """Y[i] = Σ_{k<ks} x[i·ks + k] · W[k] + b over real inputs (padding and positions ≥ T count as zero)."""
    weight, bias = layer.conv.weight, layer.conv.bias  # nn.Conv1d stores W[k][in, o] as weight[o, in, k]
    out_channels, in_channels, size = weight.shape
    batch, length, _ = x.shape
    windows = math.ceil(length / size)
    y = torch.zeros(batch, windows, out_channels, dtype=x.dtype)
    for b in range(batch):
        for i in range(windows):
            for o in range(out_channels):
                total = bias[o].item()
                for k in range(size):
                    source = i * size + k
                    if source < length and mask[b, source]:
                        total += sum(x[b, source, c] * weight[o, c, k] for c in range(in_channels))
                y[b, i, o] = total
    return y


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
def test_matches_the_direct_loop(kernel_size):
    torch.manual_seed(0)
    layer = ReduceConv(2, 3, kernel_size).double()
    x, mask = padded_batch([7, 4], 2)
    y, y_mask = layer(x, mask)
    expected = reduce_conv_loop(x, mask, layer) * y_mask[..., None]
    torch.testing.assert_close(y.detach(), expected, atol=1e-5, rtol=1e-5)


def test_any_length_and_window_mask():
    x, mask = padded_batch([7, 4, 1], 2)
    y, y_mask = ReduceConv(2, 5, 3).double()(x, mask)
    assert y.shape == (3, 3, 5)
    assert y_mask.dtype == torch.bool
    assert y_mask.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert torch.all(y[~y_mask] == 0)


def test_mask_none_gives_an_all_true_mask():
    y, y_mask = ReduceConv(2, 5, 3)(torch.randn(2, 7, 2))
    assert y.shape == (2, 3, 5)
    assert y_mask.all() and y_mask.shape == (2, 3)


def test_output_sees_only_its_window_and_earlier():
    layer = ReduceConv(2, 3, 3).double()
    x = torch.randn(1, 9, 2, dtype=torch.float64)
    base, _ = layer(x)
    for position in range(9):
        changed = x.clone()
        changed[:, position] += 5.0
        y, _ = layer(changed)
        window = position // 3
        torch.testing.assert_close(y[:, :window], base[:, :window], atol=0, rtol=0)
        assert not torch.allclose(y[:, window], base[:, window])


def test_gradcheck():
    x, mask = padded_batch([5, 3], 2)
    assert_gradcheck(ReduceConv(2, 3, 2), x, mask)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_padding_invariant(kernel_size):
    assert_padding_invariant(ReduceConv(3, 4, kernel_size), 3, scale=-kernel_size)


@pytest.mark.parametrize(
    ("args", "name"),
    [((0, 3, 2), "in_channels"), ((3, 0, 2), "out_channels"), ((3, 3, 0), "kernel_size")],
)
def test_invalid_settings(args, name):
    with pytest.raises(ValueError, match=name):
        ReduceConv(*args)


def test_invalid_input():
    layer = ReduceConv(3, 4, 2)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 6, 4))


@pytest.mark.parametrize("length", [6, 7, 8])
def test_no_mask_is_an_all_true_mask(length):
    # Without a mask the layer skips its masking arithmetic; the values must not change.
    layer = ReduceConv(2, 3, 3).double()
    x = torch.randn(2, length, 2, dtype=torch.float64)
    full = torch.ones(2, length, dtype=torch.bool)
    y, y_mask = layer(x)
    expected, expected_mask = layer(x, full)
    torch.testing.assert_close(y, expected, atol=0, rtol=0)
    assert torch.equal(y_mask, expected_mask)
    torch.testing.assert_close(y.detach(), reduce_conv_loop(x, full, layer), atol=1e-5, rtol=1e-5)
