"""Channels-last convolutions as matrix products: the same numbers as PyTorch's channels-first convolutions."""

import pytest
import torch
import torch.nn.functional as F

from sandglass.layers.channels_last import (
    WindowConv1d,
    WindowConvTranspose1d,
    sequence_conv,
    window_conv,
    window_transposed_conv,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
@pytest.mark.parametrize(("front", "back"), [(0, 0), (1, 1), (2, 0), (0, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_sequence_conv_matches_conv1d(kernel_size: int, front: int, back: int, with_bias: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    weight = torch.randn(4, 5, kernel_size, dtype=torch.float64)
    bias = torch.randn(4, dtype=torch.float64) if with_bias else None
    expected = F.conv1d(F.pad(x.transpose(1, 2), (front, back)), weight, bias).transpose(1, 2)
    torch.testing.assert_close(sequence_conv(x, weight, bias, front, back), expected)


@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_window_conv_matches_strided_conv1d(kernel_size: int, with_bias: bool) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 4 * kernel_size, 5, dtype=torch.float64)
    weight = torch.randn(6, 5, kernel_size, dtype=torch.float64)
    bias = torch.randn(6, dtype=torch.float64) if with_bias else None
    expected = F.conv1d(x.transpose(1, 2), weight, bias, stride=kernel_size).transpose(1, 2)
    torch.testing.assert_close(window_conv(x, weight, bias), expected)


@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_window_transposed_conv_matches_conv_transpose1d(kernel_size: int, with_bias: bool) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    weight = torch.randn(4, 3, kernel_size, dtype=torch.float64)
    bias = torch.randn(3, dtype=torch.float64) if with_bias else None
    expected = F.conv_transpose1d(x.transpose(1, 2), weight, bias, stride=kernel_size).transpose(1, 2)
    torch.testing.assert_close(window_transposed_conv(x, weight, bias), expected)


def test_gradients_flow_to_input_and_weights() -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: sequence_conv(x, w, b, 1, 1), (x, weight, bias))
    assert torch.autograd.gradcheck(lambda x, w, b: window_conv(x, w, b), (x, weight, bias))
    transposed = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: window_transposed_conv(x, w, b), (x, transposed, bias))


@pytest.mark.parametrize(
    ("layer_type", "channels_first"), [(WindowConv1d, F.conv1d), (WindowConvTranspose1d, F.conv_transpose1d)]
)
def test_window_module_without_gradients_follows_its_weight_and_bias(layer_type, channels_first) -> None:
    torch.manual_seed(3)
    layer = layer_type(5, 4, 3).double()
    x = torch.randn(2, 6, 5, dtype=torch.float64)

    def expected() -> torch.Tensor:
        return channels_first(x.transpose(1, 2), layer.weight, layer.bias, stride=3).transpose(1, 2)

    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected())
        layer.weight.mul_(-2.0)  # the kept rearranged weight must not outlive an in-place change
        torch.testing.assert_close(layer(x), expected())
        layer.bias.add_(1.0)  # nor a kept stacked bias
        torch.testing.assert_close(layer(x), expected())
    torch.testing.assert_close(layer(x), expected())  # with gradients, the direct path
