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


@pytest.mark.parametrize("wanted", [(0,), (1,), (2,), (0, 2), (1, 2)])
def test_only_the_requested_gradients_are_computed_and_they_are_right(wanted: tuple[int, ...]) -> None:
    inputs = random_inputs()
    for index, tensor in enumerate(inputs):
        tensor.requires_grad_(index in wanted)
    upstream = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    chosen = [inputs[index] for index in wanted]
    fused = torch.autograd.grad((mixed_kernels(*inputs) * upstream).sum(), chosen)
    reference = torch.autograd.grad((mixed_kernels_reference(*inputs) * upstream).sum(), chosen)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("autocast", [False, True])
def test_mixed_dtypes_compute_in_the_widest_and_return_gradients_in_each_input_dtype(autocast: bool) -> None:
    keys, queries, bank = (tensor.detach().float() for tensor in random_inputs())
    low_queries = queries.bfloat16().requires_grad_()
    keys.requires_grad_()
    bank.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        kernels = mixed_kernels(keys, low_queries, bank)
    assert kernels.dtype == torch.float32  # not lowered by autocast: α and its gradient stay in one dtype
    upstream = torch.randn(kernels.shape)
    (kernels * upstream).sum().backward()
    assert low_queries.grad.dtype == torch.bfloat16 and keys.grad.dtype == bank.grad.dtype == torch.float32

    wide = [
        keys.detach().clone().requires_grad_(),
        low_queries.detach().float().requires_grad_(),
        bank.detach().clone().requires_grad_(),
    ]
    expected = mixed_kernels_reference(*wide)
    (expected * upstream).sum().backward()
    torch.testing.assert_close(kernels, expected)
    torch.testing.assert_close(keys.grad, wide[0].grad)
    torch.testing.assert_close(bank.grad, wide[2].grad)
    torch.testing.assert_close(low_queries.grad, wide[1].grad.bfloat16())


def test_second_order_gradients_are_refused() -> None:
    keys, queries, bank = random_inputs()
    (grad_keys,) = torch.autograd.grad(mixed_kernels(keys, queries, bank).square().sum(), [keys], create_graph=True)
    with pytest.raises(RuntimeError, match="marked with @once_differentiable"):
        grad_keys.sum().backward()
