"""Pieces shared by the convolutions whose kernels depend on a global context vector (DESIGN.md §2).

The context ``g`` is the mean of the input over its real positions; for a causal 1-D layer it is the
running mean, so the kernel used at position ``t`` depends only on positions ``≤ t``. The convolutions keep
the length: the ``ks - 1`` zero-padding positions go with the larger half in front (top/left in 2-D), or
all in front when causal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.masking import causal_mean, masked_mean
from sandglass.layers.padding import same_padding, same_padding_2d
from sandglass.layers.shapes import require_positive


class ContextConvBase(nn.Module):
    """Sizes shared by the context-dependent convolutions, each checked to be a positive integer.

    ``in_channels``, ``out_channels`` and ``kernel_size`` are checked and kept, then the layer's own ``settings``
    (checked only), in the order given. ``spatial_dims`` (1 or 2) is set by each concrete layer class.
    """

    spatial_dims: int
    bias: nn.Parameter | None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **settings: int) -> None:
        super().__init__()
        sizes = {"in_channels": in_channels, "out_channels": out_channels, "kernel_size": kernel_size}
        for name, value in {**sizes, **settings}.items():
            require_positive(name, value)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.kernel_shape = (kernel_size,) * self.spatial_dims

    def extra_repr(self) -> str:
        has_bias = self.bias is not None
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, bias={has_bias}"


def conv1d_same(x: torch.Tensor, weight: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
    """Same-length convolution (cross-correlation) of a channels-first sequence.

    Shape:
        x: (B, C_in, T), weight: (C_out, C_in, ks) → (B, C_out, T)
    """
    return F.conv1d(F.pad(x, same_padding(weight.shape[-1], causal)), weight)


def conv2d_same(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Same-size 2-D convolution (cross-correlation), the larger half of the padding top and left.

    Shape:
        x: (B, C_in, H, W), weight: (C_out, C_in, ks, ks) → (B, C_out, H, W)
    """
    return F.conv2d(F.pad(x, same_padding_2d(weight.shape[-1])), weight)


def sequence_context(x: torch.Tensor, mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """Global context of a sequence: the mean over real positions, or the running mean when ``causal``.

    Shape:
        x: (B, T, C), mask: (B, T) or None → (B, 1, C), or (B, T, C) when causal
    """
    if causal:
        return causal_mean(x, mask)
    return masked_mean(x, mask).unsqueeze(1)


def image_context(x: torch.Tensor) -> torch.Tensor:
    """Global context of an image: the mean over all pixels.

    Shape:
        x: (B, C, H, W) → (B, C)
    """
    return x.mean(dim=(2, 3))
