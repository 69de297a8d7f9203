"""SandGlass reduce convolution (many to one): a convolution over non-overlapping windows, length / ks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.channels_last import WindowConv1d, WindowConvTranspose1d
from sandglass.layers.masking import full_mask, zero_output_padding, zero_padding
from sandglass.layers.shapes import check_sequence, require_positive


def pad_to_windows(x: torch.Tensor, mask: torch.Tensor | None, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the padding of ``x`` and pad it at the end with masked-out zeros to a multiple of ``window``.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T', C), (B, T') with T' = ceil(T / window) · window
    """
    mask = full_mask(x) if mask is None else mask
    x = pad_to_whole_windows(zero_padding(x, mask), window)
    return x, F.pad(mask, (0, x.shape[1] - mask.shape[1]), value=False)


def pad_to_whole_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``x`` padded at the end with zeros to a multiple of ``window``, every position of it real.

    Shape:
        x: (B, T, C) → (B, T', C) with T' = ceil(T / window) · window
    """
    extra = -x.shape[1] % window
    return F.pad(x, (0, 0, 0, extra)) if extra else x


def window_mask(mask: torch.Tensor, window: int) -> torch.Tensor:
    """A window is real iff it holds a real position.

    Shape:
        mask: (B, N · window) → (B, N)
    """
    return mask.view(mask.shape[0], -1, window).any(dim=-1)


class WindowConvBase(nn.Module):
    """Sizes and weights shared by :class:`ReduceConv` and :class:`ExpandConv`: a ``conv_type`` with stride = ``ks``.

    ``in_channels``, ``out_channels`` and ``kernel_size`` must be positive integers; ``conv_type`` is set by each
    layer class (:class:`WindowConv1d` to reduce, :class:`WindowConvTranspose1d` to expand).
    """

    conv_type: type[WindowConv1d] | type[WindowConvTranspose1d]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True) -> None:
        super().__init__()
        require_positive("in_channels", in_channels)
        require_positive("out_channels", out_channels)
        require_positive("kernel_size", kernel_size)
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.conv = self.conv_type(in_channels, out_channels, kernel_size, bias=bias)


class ReduceConv(WindowConvBase):
    """SandGlass reduce convolution: one output per non-overlapping window of ``ks`` positions.

        Y[i] = Σ_{k<ks} x[i·ks + k] · W[k] + b

    Any length ``T``: the input is padded at the end with zeros to a multiple of ``ks``; an output window is
    real iff it holds a real input position. Causal at the window level: output ``n`` sees only inputs
    ``< (n+1)·ks``.

    Shape:
        x: (B, T, C_in), mask: (B, T) → y: (B, ceil(T / ks), C_out), y_mask: (B, ceil(T / ks))
    """

    conv_type = WindowConv1d

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        if mask is None:
            # Every window then holds a real position, so there is nothing to zero (a batch-1 translation).
            y = self.conv(pad_to_whole_windows(x, self.kernel_size))
            return y, full_mask(y)
        x, mask = pad_to_windows(x, mask, self.kernel_size)
        y = self.conv(x)
        y_mask = window_mask(mask, self.kernel_size)
        return zero_output_padding(y, y_mask), y_mask
