"""The bank mixture's fused backward, and the mixture fused with its sequence convolution, against autograd
through the plain operations."""

import pytest
import torch

from sandglass.layers.dot_product_kernel_conv import sample_window_conv
from sandglass.layers.kernel_mixture import mixed_kernel_conv, mixed_kernels, mixed_kernels_reference

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


def conv_inputs(kernel_size: int, batch: int = 2, length: int = 7, seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(batch, length, 5, dtype=torch.float64)
    keys = torch.randn(4, 5, 3, dtype=torch.float64)
    queries = torch.randn(batch, 6, 3, dtype=torch.float64)
    bank = torch.randn(4, kernel_size, dtype=torch.float64)
    return [tensor.requires_grad_() for tensor in (x, keys, queries, bank)]


def composed_conv(x, keys, queries, bank, padding):
    return sample_window_conv(x, mixed_kernels_reference(keys, queries, bank), padding)


@pytest.mark.parametrize(("kernel_size", "padding"), [(1, (0, 0)), (2, (1, 0)), (3, (1, 1)), (4, (2, 1)), (3, (2, 0))])
def test_mixed_kernel_conv_matches_the_composed_functions(kernel_size, padding) -> None:
    inputs = conv_inputs(kernel_size)
    fused = mixed_kernel_conv(*inputs, padding)
    composed = composed_conv(*inputs, padding)
    assert fused.shape == composed.shape == (2, 7 + sum(padding) - kernel_size + 1, 6)
    torch.testing.assert_close(fused, composed, atol=1e-12, rtol=1e-12)
    upstream = torch.randn(fused.shape, dtype=torch.float64)
    got = torch.autograd.grad((fused * upstream).sum(), inputs)
    expected = torch.autograd.grad((composed * upstream).sum(), inputs)
    for got_grad, expected_grad in zip(got, expected, strict=True):
        torch.testing.assert_close(got_grad, expected_grad, atol=1e-12, rtol=1e-12)


def test_mixed_kernel_conv_gradcheck() -> None:
    inputs = conv_inputs(3, length=4)
    assert torch.autograd.gradcheck(lambda *tensors: mixed_kernel_conv(*tensors, (1, 1)), inputs)


@pytest.mark.parametrize("wanted", [(0,), (1,), (3,), (0, 2)])
def test_mixed_kernel_conv_computes_only_the_requested_gradients(wanted: tuple[int, ...]) -> None:
    inputs = conv_inputs(3)
    for index, tensor in enumerate(inputs):
        tensor.requires_grad_(index in wanted)
    chosen = [inputs[index] for index in wanted]
    upstream = torch.randn(2, 7, 6, dtype=torch.float64)
    got = torch.autograd.grad((mixed_kernel_conv(*inputs, (1, 1)) * upstream).sum(), chosen)
    expected = torch.autograd.grad((composed_conv(*inputs, (1, 1)) * upstream).sum(), chosen)
    for got_grad, expected_grad in zip(got, expected, strict=True):
        torch.testing.assert_close(got_grad, expected_grad)


def test_mixed_kernel_conv_is_right_after_calls_of_other_sizes() -> None:
    """The scratch buffers hold the last call's values: a larger and then a smaller call must not see them."""
    small = conv_inputs(3, batch=1, length=3, seed=1)
    upstream = torch.randn(1, 3, 6, dtype=torch.float64)
    expected = torch.autograd.grad((composed_conv(*small, (1, 1)) * upstream).sum(), small)
    large = conv_inputs(3, batch=3, length=9, seed=2)
    mixed_kernel_conv(*large, (1, 1)).square().sum().backward()
    got = torch.autograd.grad((mixed_kernel_conv(*small, (1, 1)) * upstream).sum(), small)
    for got_grad, expected_grad in zip(got, expected, strict=True):
        torch.testing.assert_close(got_grad, expected_grad, atol=1e-12, rtol=1e-12)


def test_a_second_backward_through_a_kept_graph_gives_the_same_gradients() -> None:
    inputs = conv_inputs(3)
    out = mixed_kernel_conv(*inputs, (1, 1)).square().sum()
    first = torch.autograd.grad(out, inputs, retain_graph=True)
    mixed_kernel_conv(*conv_inputs(3, seed=3), (1, 1)).square().sum().backward()  # overwrites the scratch
    second = torch.autograd.grad(out, inputs)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_mixed_kernel_conv_gives_the_input_gradient_alone() -> None:
    inputs = conv_inputs(3)
    for tensor in inputs[1:]:
        tensor.requires_grad_(False)
    upstream = torch.randn(2, 7, 6, dtype=torch.float64)
    (got,) = torch.autograd.grad((mixed_kernel_conv(*inputs, (1, 1)) * upstream).sum(), inputs[:1])
    (expected,) = torch.autograd.grad((composed_conv(*inputs, (1, 1)) * upstream).sum(), inputs[:1])
    torch.testing.assert_close(got, expected)


def test_mixed_kernel_conv_is_not_lowered_by_autocast() -> None:
    inputs = [tensor.detach().float().requires_grad_() for tensor in conv_inputs(3)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mixed_kernel_conv(*inputs, (1, 1))
    assert out.dtype == torch.float32
    out.square().sum().backward()
    wide = [tensor.detach().double().requires_grad_() for tensor in inputs]
    composed_conv(*wide, (1, 1)).square().sum().backward()
    torch.testing.assert_close(out.double(), composed_conv(*wide, (1, 1)), atol=1e-4, rtol=1e-4)
    for tensor, reference in zip(inputs, wide, strict=True):
        assert tensor.grad.dtype == torch.float32
        torch.testing.assert_close(tensor.grad.double(), reference.grad, atol=1e-3, rtol=1e-3)
