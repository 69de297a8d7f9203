"""SandGlass expand convolution (one to many): each position becomes ``ks`` positions, length · ks."""

from __future__ import annotations

import torch

from sandglass.layers.channels_last import WindowConvTranspose1d
from sandglass.layers.masking import full_mask, zero_output_padding
from sandglass.layers.reduce_conv import WindowConvBase
from sandglass.layers.shapes import check_sequence


class ExpandConv(WindowConvBase):
    """SandGlass expand convolution: every input position writes its own ``ks`` output positions.

        Y[i·ks + k] = x[i] · W[k] + b

    a transposed convolution with stride = kernel size; the mask is repeated ``ks`` times, so
    ``ExpandConv(ReduceConv(x))`` gives back the length of ``x`` when ``ks`` divides it.

    Shape:
        x: (B, T, C_in), mask: (B, T) → y: (B, T·ks, C_out), y_mask: (B, T·ks)
    """

    conv_type = WindowConvTranspose1d

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        y = self.conv(x)  # position-wise: padding inputs reach only padding outputs, zeroed below
        if mask is None:
            return y, full_mask(y)
        y_mask = mask.repeat_interleave(self.kernel_size, dim=1)
        return zero_output_padding(y, y_mask), y_mask
