"""The bank mixture's fused backward against autograd through the plain operations."""

import pytest
import torch

from sandglass.layers.kernel_mixture import mixed_kernels, mixed_kernels_reference

pytestmark = pytest.mark.usefixtures("single_thread")


def random_inputs(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    keys = torch.randn(4, 5, 3, dtype=dtype, requires_grad=True)
    queries = torch.randn(2, 6, 3, dtype=dtype, requires_grad=True)
    bank = torch.randn(4, 3, dtype=dtype, requires_grad=True)
    return keys, queries, bank


def test_forward_matches_the_equation() -> None:
    keys, queries, bank = random_inputs()
    kernels = mixed_kernels(keys, queries, bank)
    assert kernels.shape == (2, 3, 5, 6)
    for b in range(2):
        for i in range(5):
            for o in range(6):
                alpha = torch.softmax(torch.stack([keys[m, i] @ queries[b, o] for m in range(4)]), dim=0)
                expected = sum(alpha[m] * bank[m] for m in range(4))
                torch.testing.assert_close(kernels[b, :, i, o], expected)


def test_gradients_match_autograd_reference() -> None:
    inputs = random_inputs()
    upstream = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    fused = torch.autograd.grad((mixed_kernels(*inputs) * upstream).sum(), inputs)
    reference = torch.autograd.grad((mixed_kernels_reference(*inputs) * upstream).sum(), inputs)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected)


def test_gradcheck() -> None:
    assert torch.autograd.gradcheck(mixed_kernels, random_inputs())


def test_only_requested_gradients_are_computed() -> None:
    keys, queries, bank = random_inputs()
    bank.requires_grad_(False)
    (grad_queries,) = torch.autograd.grad(mixed_kernels(keys, queries, bank).sum(), [queries])
    assert grad_queries.shape == queries.shape


def test_bfloat16_autocast_keeps_input_dtypes() -> None:
    keys, queries, bank = (tensor.detach().float().requires_grad_() for tensor in random_inputs())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kernels = mixed_kernels(keys, queries, bank)
    kernels.sum().backward()
    assert kernels.dtype == torch.float32
    assert keys.grad.dtype == queries.grad.dtype == bank.grad.dtype == torch.float32
