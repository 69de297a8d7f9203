"""ReduceAttention: each window's attention-weighted sum, padding with zero weight."""

import math

import pytest
import torch

from sandglass.layers.reduce_attention import ReduceAttention
from tests.layers.properties import assert_gradcheck, assert_padding_invariant, padded_batch


def reduce_attention_loop(x: torch.Tensor, mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """s_i = Σ_{j≠i} x_i · x_j, α = softmax(s), Y_n = Σ_i α_i x[n·ks + i] over a window's real positions."""
    batch, length, channels = x.shape
    windows = math.ceil(length / kernel_size)
    y = torch.zeros(batch, windows, channels, dtype=x.dtype)
    for b in range(batch):
        for n in range(windows):
            real = [p for p in range(n * kernel_size, (n + 1) * kernel_size) if p < length and mask[b, p]]
            if not real:
                continue
            scores = [sum(float(x[b, i] @ x[b, j]) for j in real if j != i) for i in real]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            for i, e in zip(real, exps, strict=True):
                y[b, n] += e / sum(exps) * x[b, i]
    return y


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
def test_matches_the_direct_loop(kernel_size):
    x, mask = padded_batch([7, 5, 2], 3)
    x = torch.where(mask[..., None], x * 0.7, x)
    y, y_mask = ReduceAttention(kernel_size)(x, mask)
    torch.testing.assert_close(y, reduce_attention_loop(x, mask, kernel_size), atol=1e-5, rtol=1e-5)
    assert y_mask.tolist() == [[p * kernel_size < n for p in range(y.shape[1])] for n in (7, 5, 2)]


def test_output_shape_for_a_length_not_a_multiple():
    y, y_mask = ReduceAttention(3)(torch.randn(2, 7, 4))
    assert y.shape == (2, 3, 4)
    assert y_mask.shape == (2, 3) and y_mask.all()


def test_all_padding_window_gives_zero_and_no_nan():
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False, False, False, True], [True] * 7])
    y, y_mask = ReduceAttention(3)(x, mask)
    assert y_mask.tolist() == [[True, False, True], [True, True, True]]
    assert torch.all(y[0, 1] == 0)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad[0, 3:6] == 0)


def test_padding_gets_exactly_zero_weight():
    x, mask = padded_batch([4, 2], 3)
    garbage = x.clone()
    garbage[~mask] = torch.randn_like(garbage[~mask]) * 1e6
    layer = ReduceAttention(3)
    assert torch.equal(layer(x, mask)[0], layer(garbage, mask)[0])


def test_gradcheck():
    x, mask = padded_batch([5, 3], 2)
    x = torch.where(mask[..., None], x * 0.5, x)
    assert_gradcheck(ReduceAttention(2), x, mask)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_padding_invariant(kernel_size):
    assert_padding_invariant(ReduceAttention(kernel_size), 3, scale=-kernel_size)


def test_invalid_settings():
    with pytest.raises(ValueError, match="kernel_size"):
        ReduceAttention(0)


def test_invalid_input():
    layer = ReduceAttention(2)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        layer(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        layer(torch.randn(2, 6, 4), torch.ones(2, 5, dtype=torch.bool))
