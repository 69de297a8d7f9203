"""DotProductKernelConv / DotProductKernelConv2d against a per-sample convolution built from the equation."""

import math

import pytest
import torch
import torch.nn.functional as F

from sandglass.layers.dot_product_kernel_conv import DotProductKernelConv, DotProductKernelConv2d
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch

LENGTHS = (5, 3, 6)


def randomized(layer):
    """The layer in float64 with every parameter redrawn, so zero biases cannot hide mistakes."""
    torch.manual_seed(0)
    layer = layer.double()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return layer


def equation_kernels(layer, g):
    """Kernels ``W[o, i] = Σ_m α[o, i, m] · K[m]`` from the equation, one channel pair at a time.

    ``α[o, i] = softmax_m((q_in[i] ⊙ q_out[o] ⊙ r) · κ[m])`` with ``r = FC(g)``.
    """
    r = layer.context_query.weight @ g + layer.context_query.bias
    kernels = []
    for o in range(layer.out_channels):
        row = []
        for i in range(layer.in_channels):
            query = layer.in_queries[i] * layer.out_queries[o] * r
            logits = torch.stack([query @ layer.bank_keys[m] for m in range(layer.num_kernels)])
            alpha = torch.softmax(logits, dim=0)
            row.append(sum(alpha[m] * layer.kernel_bank[m] for m in range(layer.num_kernels)))
        kernels.append(torch.stack(row))
    return torch.stack(kernels)


def direct_conv1d(x, kernels, bias, causal):
    """``y[t, o] = Σ_{i,k} W[o, i, k] · x̃[t + k, i] + b[o]`` for one sequence ``x: (L, C)``."""
    kernel_size = kernels.shape[-1]
    front = kernel_size - 1 if causal else math.ceil((kernel_size - 1) / 2)
    padded = F.pad(x.T, (front, kernel_size - 1 - front))
    return F.conv1d(padded[None], kernels, bias)[0].T


@pytest.mark.parametrize(("kernel_size", "bias"), [(1, True), (2, True), (3, False), (4, True)])
def test_matches_per_sample_convolution(kernel_size, bias):
    layer = randomized(DotProductKernelConv(3, 4, kernel_size, num_kernels=3, key_dim=5, bias=bias))
    x, mask = padded_batch(LENGTHS, 3)
    y = layer(x, mask)
    for index, length in enumerate(LENGTHS):
        sequence = x[index, :length]
        expected = direct_conv1d(
            sequence, equation_kernels(layer, sequence.mean(0)), layer.bias, causal=False
        )
        torch.testing.assert_close(y[index, :length], expected, atol=1e-5, rtol=1e-5)
        assert torch.all(y[index, length:] == 0)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_causal_matches_per_position_kernels(kernel_size):
    layer = randomized(DotProductKernelConv(3, 4, kernel_size, num_kernels=3, key_dim=5, causal=True))
    x, mask = padded_batch(LENGTHS, 3)
    y = layer(x, mask)
    for index, length in enumerate(LENGTHS):
        sequence = x[index, :length]
        for t in range(length):
            kernels = equation_kernels(layer, sequence[: t + 1].mean(0))
            expected = direct_conv1d(sequence, kernels, layer.bias, causal=True)[t]
            torch.testing.assert_close(y[index, t], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_2d_matches_per_sample_convolution(kernel_size):
    layer = randomized(DotProductKernelConv2d(3, 4, kernel_size, num_kernels=3, key_dim=5))
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    y = layer(x)
    front = math.ceil((kernel_size - 1) / 2)
    back = kernel_size - 1 - front
    for index in range(2):
        kernels = equation_kernels(layer, x[index].mean(dim=(1, 2)))
        expected = F.conv2d(F.pad(x[index : index + 1], (front, back, front, back)), kernels, layer.bias)
        torch.testing.assert_close(y[index : index + 1], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(causal):
    layer = DotProductKernelConv(3, 2, 3, num_kernels=2, key_dim=3, causal=causal)
    x, mask = padded_batch((4, 2), 3)
    assert_gradcheck(layer, x, mask)


def test_gradcheck_2d():
    assert_gradcheck(
        DotProductKernelConv2d(2, 2, 2, num_kernels=2, key_dim=3),
        torch.randn(2, 2, 3, 3, dtype=torch.float64),
    )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_size", [3, 4])
def test_padding_invariant(causal, kernel_size):
    assert_padding_invariant(DotProductKernelConv(3, 4, kernel_size, causal=causal), channels=3)


@pytest.mark.parametrize("kernel_size", [1, 4])
def test_causal(kernel_size):
    assert_causal(DotProductKernelConv(3, 4, kernel_size, causal=True), channels=3)


def test_not_causal_looks_at_the_future():
    layer = randomized(DotProductKernelConv(3, 4, 3))
    x, _ = padded_batch([6], 3)
    changed = x.clone()
    changed[:, 5] += 1.0
    assert not torch.allclose(layer(x)[:, 0], layer(changed)[:, 0])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"out_channels": 0}, "out_channels"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"num_kernels": 0}, "num_kernels"),
        ({"key_dim": 0}, "key_dim"),
    ],
)
@pytest.mark.parametrize("cls", [DotProductKernelConv, DotProductKernelConv2d])
def test_invalid_settings(cls, kwargs, name):
    settings = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        cls(**settings)


def test_invalid_inputs():
    layer = DotProductKernelConv(3, 4, 3)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        layer(torch.randn(2, 5, 3), torch.ones(2, 4, dtype=torch.bool))
    image_layer = DotProductKernelConv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"\(B, C=3, H, W\)"):
        image_layer(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        image_layer(torch.randn(2, 4, 5, 5))


@pytest.mark.parametrize("kernel_size", [1, 2, 5])
def test_shapes(kernel_size):
    assert DotProductKernelConv(3, 5, kernel_size)(torch.randn(2, 7, 3)).shape == (2, 7, 5)
    assert DotProductKernelConv(3, 5, kernel_size, causal=True, bias=False)(torch.randn(2, 7, 3)).shape == (
        2,
        7,
        5,
    )
    assert DotProductKernelConv2d(3, 5, kernel_size)(torch.randn(2, 3, 6, 4)).shape == (2, 5, 6, 4)
