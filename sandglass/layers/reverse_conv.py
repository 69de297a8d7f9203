"""SandGlass reverse convolution (one to many): stride-1 transposed convolution banks, cropped and summed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sandglass.layers.channels_last import sequence_conv
from sandglass.layers.conv import ConvBanksBase
from sandglass.layers.masking import zero_output_padding, zero_padding
from sandglass.layers.padding import same_padding
from sandglass.layers.shapes import check_sequence
from sandglass.layers.weight_cache import WeightCache


def correlation_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The cross-correlation kernel of a stride-1 transposed convolution: its kernel flipped and transposed.

        V[o, in, k] = W[in, o, ks-1-k]

    Shape:
        weight: (C_in, C_out, ks) → (C_out, C_in, ks)
    """
    return weight.flip(-1).transpose(0, 1).contiguous()


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

    Where no gradient is taken (translation) the scatter runs in its gather form, a stride-1
    :func:`~sandglass.layers.channels_last.sequence_conv` with the :func:`correlation_kernel`,
    ``y[j] = Σ_k V[:, :, k] · x[j - (ks-1-p) + k]``: one product on ``(B, T, C)`` with no transposes, where the
    transposed convolution took about 150 µs per call at batch 1 on CPU. Training keeps the transposed
    convolution, whose backward does not keep a ``ks``-times unfolded input.

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
        self.correlation_kernels = [WeightCache() for _ in self.kernel_sizes]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        x = zero_padding(x, mask)
        y = self.scatter(x) if torch.is_grad_enabled() else self.gather(x)
        if self.bias is not None:
            y = y + self.bias
        return zero_output_padding(y, mask)

    def scatter(self, x: torch.Tensor) -> torch.Tensor:
        """The banks' summed transposed convolutions, cropped to the input length (no bias).

        Shape:
            x: (B, T, C_in) → (B, T, C_out)
        """
        length = x.shape[1]
        x = x.transpose(1, 2)
        y = 0
        for bank, size in zip(self.banks, self.kernel_sizes, strict=True):
            # The full transposed output has T + ks - 1 positions; the layer's output j is its position j + p.
            front = self.front(size)
            y = y + bank(x)[..., front : front + length]
        return y.transpose(1, 2)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`scatter` as stride-1 convolutions with the banks' cached correlation kernels (no gradient).

        Shape:
            x: (B, T, C_in) → (B, T, C_out)
        """
        y = 0
        for bank, cache, size in zip(self.banks, self.correlation_kernels, self.kernel_sizes, strict=True):
            front = self.front(size)
            y = y + sequence_conv(x, cache.get(bank.weight, correlation_kernel), None, size - 1 - front, front)
        return y

    def front(self, kernel_size: int) -> int:
        """``p``: how many of a bank's ``ks`` outputs of an input fall before it."""
        return 0 if self.causal else same_padding(kernel_size)[0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bias={self.bias is not None}"
