"""ExpandConv: each position becomes ks positions; round trip with ReduceConv."""

import pytest
import torch

from sandglass.layers.expand_conv import ExpandConv
from sandglass.layers.reduce_conv import ReduceConv
from tests.layers.properties import assert_gradcheck, assert_padding_invariant, padded_batch


def expand_conv_loop(x: torch.Tensor, layer: ExpandConv) -> torch.Tensor:
    """Y[i·ks + k] = x[i] · W[k] + b."""
    weight, bias = (
        layer.conv.weight,
        layer.conv.bias,
    )  # nn.ConvTranspose1d stores W[k][in, o] as weight[in, o, k]
    in_channels, out_channels, size = weight.shape
    batch, length, _ = x.shape
    y = torch.zeros(batch, length * size, out_channels, dtype=x.dtype)
    for b in range(batch):
        for i in range(length):
            for k in range(size):
                for o in range(out_channels):
                    y[b, i * size + k, o] = bias[o] + sum(x[b, i, c] * weight[c, o, k] for c in range(in_channels))
    return y


@pytest.mark.parametrize("kernel_size", [1, 2, 3])
def test_matches_the_direct_loop(kernel_size):
    torch.manual_seed(0)
    layer = ExpandConv(2, 3, kernel_size).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        y, y_mask = layer(x)
        torch.testing.assert_close(y, expand_conv_loop(x, layer), atol=1e-5, rtol=1e-5)
    assert y_mask.shape == (2, 4 * kernel_size) and y_mask.all()


def test_output_shape_and_mask():
    x, mask = padded_batch([4, 2], 2)
    y, y_mask = ExpandConv(2, 5, 3).double()(x, mask)
    assert y.shape == (2, 12, 5)
    assert torch.equal(y_mask, mask.repeat_interleave(3, dim=1))
    assert torch.all(y[1, 6:] == 0)


@pytest.mark.parametrize(("lengths", "kernel_size"), [([6, 4, 1], 3), ([7, 5], 3), ([8, 3], 2)])
def test_reduce_then_expand_round_trips_length_and_covers_mask(lengths, kernel_size):
    x, mask = padded_batch(lengths, 2)
    reduced, reduced_mask = ReduceConv(2, 4, kernel_size).double()(x, mask)
    y, y_mask = ExpandConv(4, 2, kernel_size).double()(reduced, reduced_mask)
    length = x.shape[1]
    padded_length = -(-length // kernel_size) * kernel_size
    assert y.shape == (len(lengths), padded_length, 2)
    if length % kernel_size == 0:
        assert y.shape[1] == length
    assert torch.all(y_mask[:, :length] | ~mask), "a real input position came back masked out"
    assert torch.all(y_mask.sum(dim=1) < torch.tensor(lengths) + kernel_size)


def test_gradcheck():
    x, mask = padded_batch([3, 2], 2)
    assert_gradcheck(ExpandConv(2, 3, 2), x, mask)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_padding_invariant(kernel_size):
    assert_padding_invariant(ExpandConv(3, 4, kernel_size), 3, scale=kernel_size)


@pytest.mark.parametrize(
    ("args", "name"),
    [((0, 3, 2), "in_channels"), ((3, 0, 2), "out_channels"), ((3, 3, -1), "kernel_size")],
)
def test_invalid_settings(args, name):
    with pytest.raises(ValueError, match=name):
        ExpandConv(*args)


def test_invalid_input():
    layer = ExpandConv(3, 4, 2)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 6, 4))


def test_no_mask_is_an_all_true_mask():
    layer = ExpandConv(2, 3, 2).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    y, y_mask = layer(x)
    expected, expected_mask = layer(x, torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(y, expected, atol=0, rtol=0)
    assert torch.equal(y_mask, expected_mask)
