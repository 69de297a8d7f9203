"""Convolutions of channels-last sequences as one matrix product each: no ``(B, C, T)`` transposes.

``nn.Conv1d`` wants ``(B, C, T)``; the layers hold ``(B, T, C)``. Unfolding the windows and multiplying by the
flattened kernel computes the same sums and skips the two transposed copies. At batch 1 it also avoids PyTorch's
unblocked small-input convolution kernels; the stride = kernel size layers are a plain reshape and one product,
which halves their backward pass. The price: a stride-1 convolution keeps its unfolded input (``ks`` times the
input) for the backward pass where ``conv1d`` keeps the input itself.

The modules are ``nn.Conv1d`` / ``nn.ConvTranspose1d`` with the same parameters and initialization (so
``state_dict`` keys are unchanged) whose ``forward`` takes and returns ``(B, T, C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.weight_cache import WeightCache


def sequence_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, front: int, back: int
) -> torch.Tensor:
    """Stride-1 cross-correlation with ``front`` and ``back`` zeros around the sequence.

        y[t] = Σ_{k<ks} W[:, :, k] · x[t - front + k] + b,   x zero outside 0..T-1

    Shape:
        x: (B, T, C_in), weight: (C_out, C_in, ks) → (B, T + front + back - ks + 1, C_out)
    """
    windows = sequence_windows(x, weight.shape[-1], front, back)
    return F.linear(windows.flatten(2), weight.flatten(1), bias)


def sequence_windows(x: torch.Tensor, kernel_size: int, front: int, back: int) -> torch.Tensor:
    """The ``ks`` positions each output of a stride-1 convolution reads, as a view of the padded sequence.

        windows[t, :, k] = x[t - front + k],   x zero outside 0..T-1

    Shape:
        x: (B, T, C) → (B, T + front + back - ks + 1, C, ks)
    """
    return F.pad(x, (0, 0, front, back)).unfold(1, kernel_size, 1)


def window_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Convolution with stride = kernel size over a length that is a multiple of it.

        y[n] = Σ_{k<ks} W[:, :, k] · x[n·ks + k] + b

    Shape:
        x: (B, N·ks, C_in), weight: (C_out, C_in, ks) → (B, N, C_out)
    """
    return window_major_conv(x, window_major_weight(weight), bias)


def window_major_weight(weight: torch.Tensor) -> torch.Tensor:
    """A convolution's weight with its taps before its input channels: column ``k·C_in + c`` is ``W[:, c, k]``.

    Shape:
        weight: (C_out, C_in, ks) → (C_out, ks·C_in)
    """
    return weight.transpose(1, 2).flatten(1)


def window_major_conv(x: torch.Tensor, window_major: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`window_conv` with its weight already in :func:`window_major_weight`'s layout: each window of ``ks``
    positions is one row of the product, a reshape of ``x`` and no copy.

    Shape:
        x: (B, N·ks, C_in), window_major: (C_out, ks·C_in) → (B, N, C_out)
    """
    batch, length, channels = x.shape
    kernel_size = window_major.shape[1] // channels
    return F.linear(x.reshape(batch, length // kernel_size, kernel_size * channels), window_major, bias)


def window_transposed_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Transposed convolution with stride = kernel size: each position writes its own ``ks`` outputs.

        y[i·ks + k] = x[i] · W[:, :, k] + b

    Shape:
        x: (B, T, C_in), weight: (C_in, C_out, ks) → (B, T·ks, C_out)
    """
    kernel_size = weight.shape[-1]
    return tap_major_transposed_conv(x, tap_major_weight(weight), tap_major_bias(bias, kernel_size), kernel_size)


def tap_major_weight(weight: torch.Tensor) -> torch.Tensor:
    """A transposed convolution's weight with its taps before its output channels: column ``k·C_out + o`` is
    ``W[:, o, k]``.

    Shape:
        weight: (C_in, C_out, ks) → (C_in, ks·C_out)
    """
    return weight.transpose(1, 2).reshape(weight.shape[0], -1)


def tap_major_bias(bias: torch.Tensor | None, kernel_size: int) -> torch.Tensor | None:
    """A transposed convolution's bias repeated for each tap, as :func:`tap_major_weight`'s columns take it.

    Shape:
        bias: (C_out,) → (ks·C_out,)
    """
    return None if bias is None else bias.repeat(kernel_size)


def tap_major_transposed_conv(
    x: torch.Tensor, tap_major: torch.Tensor, stacked_bias: torch.Tensor | None, kernel_size: int
) -> torch.Tensor:
    """:func:`window_transposed_conv` with its weight and bias already in :func:`tap_major_weight`'s and
    :func:`tap_major_bias`'s layouts.

    The product's output is then (B, T, ks, C_out), which is (B, T·ks, C_out) in memory: a copy of the weight
    instead of one of the ``ks``-times-longer output (and of its gradient).

    Shape:
        x: (B, T, C_in), tap_major: (C_in, ks·C_out), stacked_bias: (ks·C_out,) → (B, T·ks, C_out)
    """
    batch, length, _ = x.shape
    return F.linear(x, tap_major.t(), stacked_bias).view(batch, length * kernel_size, -1)


class SequenceConv1d(nn.Conv1d):
    """``nn.Conv1d`` on ``(B, T, C)`` with ``padding = (front, back)`` zeros: :func:`sequence_conv`.

        y[t] = Σ_{k<ks} W[:, :, k] · x[t - front + k] + b

    Shape:
        x: (B, T, C_in) → (B, T + front + back - ks + 1, C_out)
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, padding: tuple[int, int], bias: bool = True
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)
        self.sequence_padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sequence_conv(x, self.weight, self.bias, *self.sequence_padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sequence_padding={self.sequence_padding}, channels_last=True"


class WindowConv1d(nn.Conv1d):
    """``nn.Conv1d`` with stride = kernel size on ``(B, T, C)``, ``T`` a multiple of it: :func:`window_conv`.

        y[n] = Σ_{k<ks} W[:, :, k] · x[n·ks + k] + b

    Shape:
        x: (B, N·ks, C_in) → (B, N, C_out)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=kernel_size, bias=bias)
        self.window_major = WeightCache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Without gradients the rearranged weight is kept: at batch 1 its copy took half the time of the product.
        window_major = self.window_major.derived(self.weight, window_major_weight)
        return window_major_conv(x, window_major, self.bias)


class WindowConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with stride = kernel size on ``(B, T, C)``: :func:`window_transposed_conv`.

        y[i·ks + k] = x[i] · W[:, :, k] + b

    Shape:
        x: (B, T, C_in) → (B, T·ks, C_out)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=kernel_size, bias=bias)
        self.tap_major = WeightCache()
        self.stacked_bias = WeightCache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Without gradients the rearranged weight and bias are kept: at batch 1 their copies cost more than the
        # product.
        kernel_size = self.kernel_size[0]
        tap_major = self.tap_major.derived(self.weight, tap_major_weight)
        stacked_bias = None
        if self.bias is not None:
            stacked_bias = self.stacked_bias.derived(self.bias, lambda bias: tap_major_bias(bias, kernel_size))
        return tap_major_transposed_conv(x, tap_major, stacked_bias, kernel_size)
