"""The context-dependent convolutions, 1-D and 2-D, against per-sample convolutions built from their equations.

Kernel-weighted, FC-generated and dot-product kernels each have their own equation (``*_kernels`` below); every
other check is written once and runs on all three layer families.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.dot_product_kernel_conv import DotProductKernelConv, DotProductKernelConv2d
from sandglass.layers.fc_generated_kernel_conv import FCGeneratedKernelConv, FCGeneratedKernelConv2d
from sandglass.layers.kernel_weighted_conv import KernelWeightedConv, KernelWeightedConv2d
from tests.layers.properties import (
    assert_autocast_takes_reference,
    assert_causal,
    assert_checkpointing_exact,
    assert_gradcheck,
    assert_padding_invariant,
    padded_batch,
)

LENGTHS = (5, 3, 6)


def kernel_weighted_kernels(layer, g):
    """Kernels ``a[o] · W[o]`` with ``a[o] = sigmoid(FC(g) · v[o])``, one output channel at a time."""
    z = layer.reduce.weight @ g + layer.reduce.bias
    return torch.stack([torch.sigmoid(z @ layer.kernel_keys[o]) * layer.weight[o] for o in range(layer.out_channels)])


def fc_generated_kernels(layer, g):
    """Kernels ``W[o] = reshape(C·h[o])`` with ``h[o] = sigmoid(A·g) ⊙ (B·e[o])``, one channel at a time."""
    gate = torch.sigmoid(layer.context_gate.weight @ g + layer.context_gate.bias)
    spatial_dims = 2 if isinstance(layer, FCGeneratedKernelConv2d) else 1
    shape = (layer.in_channels, *[layer.kernel_size] * spatial_dims)
    kernels = []
    for o in range(layer.out_channels):
        h = gate * (layer.embedding_proj.weight @ layer.kernel_embeddings[o] + layer.embedding_proj.bias)
        kernels.append((layer.kernel_generator.weight @ h + layer.kernel_generator.bias).reshape(shape))
    return torch.stack(kernels)


def dot_product_kernels(layer, g):
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


@dataclass(frozen=True)
class Family:
    """A 1-D and 2-D layer pair, its equation and the settings its checks build it with."""

    conv: type[nn.Module]
    conv2d: type[nn.Module]
    equation_kernels: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    settings: tuple[str, ...]  # the layer's own positive-integer settings
    exact: dict[str, int]  # for the comparisons with the equation
    gradcheck: dict[str, int]
    gradcheck_2d: dict[str, int]


FAMILIES = [
    Family(
        KernelWeightedConv,
        KernelWeightedConv2d,
        kernel_weighted_kernels,
        settings=("reduction",),
        exact={"reduction": 1},
        gradcheck={"reduction": 2},
        gradcheck_2d={"reduction": 1},
    ),
    Family(
        FCGeneratedKernelConv,
        FCGeneratedKernelConv2d,
        fc_generated_kernels,
        settings=("embed_dim", "hidden"),
        exact={"embed_dim": 3, "hidden": 5},
        gradcheck={"embed_dim": 2, "hidden": 3},
        gradcheck_2d={"embed_dim": 2, "hidden": 3},
    ),
    Family(
        DotProductKernelConv,
        DotProductKernelConv2d,
        dot_product_kernels,
        settings=("num_kernels", "key_dim"),
        exact={"num_kernels": 3, "key_dim": 5},
        gradcheck={"num_kernels": 2, "key_dim": 3},
        gradcheck_2d={"num_kernels": 2, "key_dim": 3},
    ),
]

each_family = pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.conv.__name__)


def randomized(layer):
    """The layer in float64 with every parameter redrawn, so zero biases cannot hide mistakes."""
    torch.manual_seed(0)
    layer = layer.double()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return layer


def direct_conv1d(x, kernels, bias, causal):
    """``y[t, o] = Σ_{i,k} W[o, i, k] · x̃[t + k, i] + b[o]`` for one sequence ``x: (L, C)``."""
    kernel_size = kernels.shape[-1]
    front = kernel_size - 1 if causal else math.ceil((kernel_size - 1) / 2)
    padded = F.pad(x.T, (front, kernel_size - 1 - front))
    return F.conv1d(padded[None], kernels, bias)[0].T


@each_family
@pytest.mark.parametrize(("kernel_size", "bias"), [(1, True), (2, True), (3, False), (4, True)])
def test_matches_per_sample_convolution(family, kernel_size, bias):
    layer = randomized(family.conv(3, 4, kernel_size, bias=bias, **family.exact))
    x, mask = padded_batch(LENGTHS, 3)
    y = layer(x, mask)
    for index, length in enumerate(LENGTHS):
        sequence = x[index, :length]
        kernels = family.equation_kernels(layer, sequence.mean(0))
        expected = direct_conv1d(sequence, kernels, layer.bias, causal=False)
        torch.testing.assert_close(y[index, :length], expected, atol=1e-5, rtol=1e-5)
        assert torch.all(y[index, length:] == 0)


@each_family
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_causal_matches_per_position_kernels(family, kernel_size):
    layer = randomized(family.conv(3, 4, kernel_size, causal=True, **family.exact))
    x, mask = padded_batch(LENGTHS, 3)
    y = layer(x, mask)
    for index, length in enumerate(LENGTHS):
        sequence = x[index, :length]
        for t in range(length):
            kernels = family.equation_kernels(layer, sequence[: t + 1].mean(0))
            expected = direct_conv1d(sequence, kernels, layer.bias, causal=True)[t]
            torch.testing.assert_close(y[index, t], expected, atol=1e-5, rtol=1e-5)


@each_family
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_2d_matches_per_sample_convolution(family, kernel_size):
    layer = randomized(family.conv2d(3, 4, kernel_size, **family.exact))
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    y = layer(x)
    front = math.ceil((kernel_size - 1) / 2)
    back = kernel_size - 1 - front
    for index in range(2):
        kernels = family.equation_kernels(layer, x[index].mean(dim=(1, 2)))
        expected = F.conv2d(F.pad(x[index : index + 1], (front, back, front, back)), kernels, layer.bias)
        torch.testing.assert_close(y[index : index + 1], expected, atol=1e-5, rtol=1e-5)


@each_family
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(family, causal):
    layer = family.conv(3, 2, 3, causal=causal, **family.gradcheck)
    x, mask = padded_batch((4, 2), 3)
    assert_gradcheck(layer, x, mask)


@each_family
def test_gradcheck_2d(family):
    assert_gradcheck(family.conv2d(2, 2, 2, **family.gradcheck_2d), torch.randn(2, 2, 3, 3, dtype=torch.float64))


@each_family
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_size", [3, 4])
def test_padding_invariant(family, causal, kernel_size):
    assert_padding_invariant(family.conv(3, 4, kernel_size, causal=causal), channels=3)


@each_family
@pytest.mark.parametrize("kernel_size", [1, 4])
def test_causal(family, kernel_size):
    assert_causal(family.conv(3, 4, kernel_size, causal=True), channels=3)


@each_family
def test_not_causal_looks_at_the_future(family):
    layer = randomized(family.conv(3, 4, 3))
    x, _ = padded_batch([6], 3)
    changed = x.clone()
    changed[:, 5] += 1.0
    assert not torch.allclose(layer(x)[:, 0], layer(changed)[:, 0])


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        pytest.param(cls, name, id=f"{cls.__name__}-{name}")
        for family in FAMILIES
        for cls in (family.conv, family.conv2d)
        for name in ("in_channels", "out_channels", "kernel_size", *family.settings)
    ],
)
def test_invalid_settings(cls, name):
    settings = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, name: 0}
    with pytest.raises(ValueError, match=name):
        cls(**settings)


@each_family
def test_invalid_inputs(family):
    layer = family.conv(3, 4, 3)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        layer(torch.randn(2, 5, 3), torch.ones(2, 4, dtype=torch.bool))
    image_layer = family.conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"\(B, C=3, H, W\)"):
        image_layer(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        image_layer(torch.randn(2, 4, 5, 5))


@each_family
@pytest.mark.parametrize("kernel_size", [1, 2, 5])
def test_shapes(family, kernel_size):
    assert family.conv(3, 5, kernel_size)(torch.randn(2, 7, 3)).shape == (2, 7, 5)
    assert family.conv(3, 5, kernel_size, causal=True, bias=False)(torch.randn(2, 7, 3)).shape == (2, 7, 5)
    assert family.conv2d(3, 5, kernel_size)(torch.randn(2, 3, 6, 4)).shape == (2, 5, 6, 4)


@pytest.mark.parametrize(("kernel_size", "bias"), [(1, True), (2, False), (3, True), (4, True)])
def test_dot_product_fused_path_matches_its_reference(kernel_size, bias):
    layer = randomized(DotProductKernelConv(3, 4, kernel_size, bias=bias, num_kernels=3, key_dim=5))
    assert layer._runs_fused(torch.zeros(1, 1, 3, dtype=torch.float64))
    x, mask = padded_batch((5, 3, 6, 0), 3)  # the last sequence is all padding
    x.requires_grad_()
    upstream = torch.randn(4, 6, 4, dtype=torch.float64)
    inputs = [x, *layer.parameters()]
    fused = layer(x, mask)
    reference = layer.reference_forward(x, mask)
    torch.testing.assert_close(fused, reference, atol=1e-12, rtol=1e-12)
    assert torch.all(fused[3] == 0)
    got = torch.autograd.grad((fused * upstream).sum(), inputs)
    expected = torch.autograd.grad((reference * upstream).sum(), inputs)
    for got_grad, expected_grad in zip(got, expected, strict=True):
        assert torch.isfinite(got_grad).all()
        torch.testing.assert_close(got_grad, expected_grad, atol=1e-12, rtol=1e-12)


def test_dot_product_under_autocast_takes_the_reference_path():
    layer = DotProductKernelConv(8, 8, 3)
    x = torch.zeros(1, 1, 8)
    assert layer._runs_fused(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not layer._runs_fused(x)
    assert_autocast_takes_reference(layer, 8)


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_dot_product_under_activation_checkpointing(use_reentrant):
    assert_checkpointing_exact(
        lambda: randomized(DotProductKernelConv(3, 3, 3, num_kernels=2, key_dim=4)), 3, use_reentrant=use_reentrant
    )
