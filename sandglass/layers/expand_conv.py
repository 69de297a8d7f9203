"""SandGlass expand convolution (one to many): each position becomes ``ks`` positions, length · ks."""

from __future__ import annotations

import torch
from torch import nn

from sandglass.layers.masking import full_mask, zero_padding
from sandglass.layers.shapes import check_sequence, require_positive


class ExpandConv(nn.Module):
    """SandGlass expand convolution: every input position writes its own ``ks`` output positions.

        Y[i·ks + k] = x[i] · W[k] + b

    a transposed convolution with stride = kernel size; the mask is repeated ``ks`` times, so
    ``ExpandConv(ReduceConv(x))`` gives back the length of ``x`` when ``ks`` divides it.

    Shape:
        x: (B, T, C_in), mask: (B, T) → y: (B, T·ks, C_out), y_mask: (B, T·ks)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True) -> None:
        super().__init__()
        require_positive("in_channels", in_channels)
        require_positive("out_channels", out_channels)
        require_positive("kernel_size", kernel_size)
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=kernel_size, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        y = self.conv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)
        y_mask = (full_mask(x) if mask is None else mask).repeat_interleave(self.kernel_size, dim=1)
        return zero_padding(y, y_mask), y_mask
