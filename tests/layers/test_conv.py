"""Conv: parallel same-length convolution banks, concatenated along channels."""

import math

import pytest
import torch

from sandglass.layers.conv import Conv
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch

KERNEL_SIZES = [(3,), (4,), (4, 1), (3, 2, 5)]


def conv_loop(x: torch.Tensor, layer: Conv) -> torch.Tensor:
    """Y[o, i] = Σ_in Σ_{k<ks} x[in, i+k-p] · W[in, o, k] + b[o] per bank (x zero outside 0..T-1).

    The banks' outputs are concatenated along channels.
    """
    batch, length, _ = x.shape
    outputs = []
    for bank in layer.banks:
        weight = bank.weight  # nn.Conv1d stores W[in, o, k] as weight[o, in, k]
        out_channels, in_channels, size = weight.shape
        front = size - 1 if layer.causal else math.ceil((size - 1) / 2)
        y = torch.zeros(batch, length, out_channels, dtype=x.dtype)
        for b in range(batch):
            for i in range(length):
                for o in range(out_channels):
                    total = bank.bias[o].item() if bank.bias is not None else 0.0
                    for k in range(size):
                        source = i + k - front
                        if 0 <= source < length:
                            total += sum(x[b, source, c] * weight[o, c, k] for c in range(in_channels))
                    y[b, i, o] = total
        outputs.append(y)
    return torch.cat(outputs, dim=-1)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_sizes", KERNEL_SIZES)
def test_matches_the_direct_loop(kernel_sizes, causal):
    torch.manual_seed(0)
    layer = Conv(2, 2 * len(kernel_sizes), kernel_sizes, causal=causal).double()
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), conv_loop(x, layer), atol=1e-5, rtol=1e-5)


def test_even_kernel_puts_the_larger_padding_half_in_front():
    layer = Conv(1, 1, (2,), bias=False).double()
    with torch.no_grad():
        layer.banks[0].weight.copy_(torch.tensor([[[1.0, 0.0]]]))
    x = torch.tensor([[[1.0], [2.0], [3.0]]], dtype=torch.float64)
    # p = 1: Y[i] = x[i-1] · W[0] + x[i] · W[1]
    torch.testing.assert_close(layer(x).detach().flatten(), torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))


def test_gradcheck():
    x, mask = padded_batch([4, 3], 2)
    assert_gradcheck(Conv(2, 4, (3, 2)), x, mask)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_sizes", [(4, 1), (3, 2, 5)])
def test_padding_invariant(kernel_sizes, causal):
    assert_padding_invariant(Conv(3, 6, kernel_sizes, causal=causal), 3)


@pytest.mark.parametrize("kernel_sizes", [(4, 1), (3, 2, 5)])
def test_causal(kernel_sizes):
    assert_causal(Conv(3, 6, kernel_sizes, causal=True), 3)


def test_non_causal_layer_looks_ahead():
    with pytest.raises(AssertionError):
        assert_causal(Conv(3, 6, (4, 1)), 3)


def test_output_shape_and_padding_zeroed():
    x, mask = padded_batch([5, 2], 3)
    y = Conv(3, 6, (4, 1)).double()(x, mask)
    assert y.shape == (2, 5, 6)
    assert torch.all(y[1, 2:] == 0)
    assert Conv(3, 4, (3,))(torch.randn(1, 7, 3)).shape == (1, 7, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"in_channels": 0, "out_channels": 4}, "in_channels"),
        ({"in_channels": 3, "out_channels": 0}, "out_channels"),
        ({"in_channels": 3, "out_channels": 5, "kernel_sizes": (4, 1)}, "out_channels"),
        ({"in_channels": 3, "out_channels": 4, "kernel_sizes": (4, 0)}, r"kernel_sizes\[1\]"),
        ({"in_channels": 3, "out_channels": 4, "kernel_sizes": ()}, "kernel_sizes"),
    ],
)
def test_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Conv(**kwargs)


def test_invalid_input():
    layer = Conv(3, 4)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 5, 4))
