"""SandGlass reverse convolution (one to many): stride-1 transposed convolution banks, cropped and summed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sandglass.layers.conv import ConvBanksBase
from sandglass.layers.masking import zero_padding
from sandglass.layers.padding import same_padding
from sandglass.layers.shapes import check_sequence


class ReverseConv(ConvBanksBase):
    """SandGlass reverse convolution: each input position scatters into ``ks`` output positions.

    Every bank (one per kernel size ``ks``) scatters, and the banks' outputs are summed:

        Y[o, i-p : i-p+ks] += x[in, i] · W[in, o, 0:ks],   then Y += b, keeping output positions 0..T-1

    a stride-1 transposed convolution cropped back to the input length. With the same ``p = ceil((ks-1)/2)``
    as :class:`~sandglass.layers.conv.Conv` it is that layer's exact adjoint
    (``<Conv(x), y> = <x, ReverseConv(y)>`` for shared weights and no bias). ``causal=True`` uses ``p = 0``:
    input ``i`` writes to ``i..i+ks-1``, so output ``j`` sees only inputs ``≤ j``. The seed's bias
    ``b[in, o]``, summed over ``in`` and over the banks, is one bias per output channel. Padding positions are
    zeroed before the scatter and in the output.

    Shape:
        x: (B, T, C_in), mask: (B, T) → (B, T, C_out)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: int | Sequence[int] = (3,),
        *,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_sizes, causal)
        self.banks = nn.ModuleList(
            nn.ConvTranspose1d(in_channels, out_channels, size, bias=False) for size in self.kernel_sizes
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        length = x.shape[1]
        x = zero_padding(x, mask).transpose(1, 2)
        y = 0
        for bank, size in zip(self.banks, self.kernel_sizes, strict=True):
            # The full transposed output has T + ks - 1 positions; the layer's output j is its position j + p.
            front = 0 if self.causal else same_padding(size)[0]
            y = y + bank(x)[..., front : front + length]
        y = y.transpose(1, 2)
        if self.bias is not None:
            y = y + self.bias
        return zero_padding(y, mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bias={self.bias is not None}"
