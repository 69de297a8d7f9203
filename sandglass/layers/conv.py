"""SandGlass convolution (many to one): parallel same-length convolution banks, concatenated."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sandglass.layers.channels_last import SequenceConv1d
from sandglass.layers.masking import zero_output_padding, zero_padding
from sandglass.layers.padding import same_padding
from sandglass.layers.shapes import check_sequence, require_divisible, require_positive


def check_kernel_sizes(kernel_sizes: int | Sequence[int]) -> tuple[int, ...]:
    """The kernel sizes of a layer's parallel banks as a tuple, each a positive integer."""
    sizes = (kernel_sizes,) if isinstance(kernel_sizes, int) else tuple(kernel_sizes)
    if not sizes:
        raise ValueError("kernel_sizes must hold at least one kernel size, got ()")
    for index, size in enumerate(sizes):
        require_positive(f"kernel_sizes[{index}]", size)
    return sizes


class ConvBanksBase(nn.Module):
    """Sizes shared by :class:`Conv` and :class:`ReverseConv`: parallel banks, one per kernel size.

    ``in_channels`` and ``out_channels`` must be positive integers and ``kernel_sizes`` a non-empty sequence of
    them (or one integer); the checked sizes and ``causal`` are kept.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: int | Sequence[int], causal: bool) -> None:
        super().__init__()
        require_positive("in_channels", in_channels)
        require_positive("out_channels", out_channels)
        self.kernel_sizes = check_kernel_sizes(kernel_sizes)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.causal = causal

    def extra_repr(self) -> str:
        return f"kernel_sizes={self.kernel_sizes}, causal={self.causal}"


class Conv(ConvBanksBase):
    """SandGlass convolution: parallel same-length convolution banks, outputs concatenated along channels.

    Each bank (one per kernel size ``ks``, like Inception branches) makes ``C_out / len(kernel_sizes)``
    channels:

        Y[o, i] = Σ_in Σ_{k<ks} x[in, i+k-p] · W[in, o, k] + b[o]

    with ``x`` zero outside ``0..T-1`` and ``p = ceil((ks-1)/2)``: of the ``ks-1`` padding positions the
    larger half goes in front and the rest behind. ``causal=True`` puts all ``ks-1`` in front (``p = ks-1``),
    so position ``i`` sees only inputs ``≤ i``. The seed's bias ``b[in, o]`` is summed over ``in``, which is
    one bias per output channel. Padding positions are zeroed before the convolution and in the output.

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
        require_divisible("out_channels", out_channels, "the number of kernel_sizes", len(self.kernel_sizes))
        bank_channels = out_channels // len(self.kernel_sizes)
        self.banks = nn.ModuleList(
            SequenceConv1d(in_channels, bank_channels, size, padding=same_padding(size, causal), bias=bias)
            for size in self.kernel_sizes
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        x = zero_padding(x, mask)
        outputs = [bank(x) for bank in self.banks]
        y = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        return zero_output_padding(y, mask)
