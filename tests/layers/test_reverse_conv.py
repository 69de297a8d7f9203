"""ReverseConv: stride-1 transposed convolution banks, cropped to the input length and summed."""

import math

import pytest
import torch

from sandglass.layers.conv import Conv
from sandglass.layers.reverse_conv import ReverseConv
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch

KERNEL_SIZES = [(3,), (4,), (4, 1), (3, 2, 5)]


def reverse_conv_loop(x: torch.Tensor, layer: ReverseConv) -> torch.Tensor:
    """Y[o, i-p+k] += x[in, i] · W[in, o, k] for every bank, kept on 0..T-1, plus the bias."""
    batch, length, _ = x.shape
    y = torch.zeros(batch, length, layer.out_channels, dtype=x.dtype)
    for bank in layer.banks:
        weight = bank.weight  # nn.ConvTranspose1d stores W[in, o, k] as weight[in, o, k]
        in_channels, out_channels, size = weight.shape
        front = 0 if layer.causal else math.ceil((size - 1) / 2)
        for b in range(batch):
            for i in range(length):
                for k in range(size):
                    target = i - front + k
                    if not 0 <= target < length:
                        continue
                    for o in range(out_channels):
                        y[b, target, o] += sum(x[b, i, c] * weight[c, o, k] for c in range(in_channels))
    if layer.bias is not None:
        y += layer.bias
    return y


@pytest.mark.parametrize("grad", [True, False], ids=["scatter", "gather"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_sizes", KERNEL_SIZES)
def test_matches_the_direct_loop(kernel_sizes, causal, grad):
    """With gradients the layer scatters (transposed convolutions); without, it gathers (correlations)."""
    torch.manual_seed(0)
    layer = ReverseConv(2, 3, kernel_sizes, causal=causal).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    with torch.no_grad():
        expected = reverse_conv_loop(x, layer)
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_the_gather_form_follows_a_changed_weight():
    """The cached correlation kernels are rebuilt after an in-place update (an optimizer step, a load)."""
    torch.manual_seed(0)
    layer = ReverseConv(3, 3, (3, 2)).double()
    x, mask = padded_batch([5, 3], 3)
    with torch.no_grad():
        layer(x, mask)
        layer.banks[1].weight.mul_(-2.0)
        gathered = layer(x, mask)
    torch.testing.assert_close(gathered, layer(x, mask), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kernel_sizes", KERNEL_SIZES)
def test_is_the_adjoint_of_conv(kernel_sizes):
    """<Conv(x), y> = <x, ReverseConv(y)>: ReverseConv bank j reads the channels Conv bank j writes."""
    torch.manual_seed(0)
    banks = len(kernel_sizes)
    conv = Conv(3, 2 * banks, kernel_sizes, bias=False).double()
    reverse = ReverseConv(2 * banks, 3, kernel_sizes, bias=False).double()
    with torch.no_grad():
        for index, (conv_bank, reverse_bank) in enumerate(zip(conv.banks, reverse.banks, strict=True)):
            reverse_bank.weight.zero_()
            reverse_bank.weight[2 * index : 2 * index + 2] = conv_bank.weight
        x = torch.randn(2, 7, 3, dtype=torch.float64)
        y = torch.randn(2, 7, 2 * banks, dtype=torch.float64)
        torch.testing.assert_close((conv(x) * y).sum(), (x * reverse(y)).sum(), atol=1e-10, rtol=1e-10)


def test_gradcheck():
    x, mask = padded_batch([4, 3], 2)
    assert_gradcheck(ReverseConv(2, 3, (3, 2)), x, mask)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_sizes", [(4, 1), (3, 2, 5)])
def test_padding_invariant(kernel_sizes, causal):
    layer = ReverseConv(3, 4, kernel_sizes, causal=causal)
    with torch.no_grad():
        layer.bias.normal_()
    assert_padding_invariant(layer, 3)


@pytest.mark.parametrize("kernel_sizes", [(4, 1), (3, 2, 5)])
def test_causal(kernel_sizes):
    assert_causal(ReverseConv(3, 4, kernel_sizes, causal=True), 3)


def test_non_causal_layer_looks_ahead():
    with pytest.raises(AssertionError):
        assert_causal(ReverseConv(3, 4, (3,)), 3)


def test_output_shape_and_padding_zeroed():
    x, mask = padded_batch([5, 2], 3)
    layer = ReverseConv(3, 4, (4, 1)).double()
    with torch.no_grad():
        layer.bias.normal_()
    y = layer(x, mask)
    assert y.shape == (2, 5, 4)
    assert torch.all(y[1, 2:] == 0)
    assert ReverseConv(3, 4, (3,), bias=False)(torch.randn(1, 7, 3)).shape == (1, 7, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"in_channels": 0, "out_channels": 4}, "in_channels"),
        ({"in_channels": 3, "out_channels": 0}, "out_channels"),
        ({"in_channels": 3, "out_channels": 4, "kernel_sizes": (0,)}, r"kernel_sizes\[0\]"),
        ({"in_channels": 3, "out_channels": 4, "kernel_sizes": ()}, "kernel_sizes"),
    ],
)
def test_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ReverseConv(**kwargs)


def test_invalid_input():
    layer = ReverseConv(3, 4)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(2, 5, 3, 1))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 5, 2))
