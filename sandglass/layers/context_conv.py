"""Pieces shared by the convolutions whose kernels depend on a global context vector (DESIGN.md §2).

The context ``g`` is the mean of the input over its real positions; for a causal 1-D layer it is the
running mean, so the kernel used at position ``t`` depends only on positions ``≤ t``. The convolutions keep
the length: the ``ks - 1`` zero-padding positions go with the larger half in front (top/left in 2-D), or
all in front when causal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sandglass.layers.masking import causal_mean, masked_mean


def same_padding(kernel_size: int, causal: bool = False) -> tuple[int, int]:
    """``(front, back)`` zero padding that keeps the length: the larger half of ``ks - 1`` in front."""
    total = kernel_size - 1
    front = total if causal else total - total // 2
    return front, total - front


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
    front, back = same_padding(weight.shape[-1])
    return F.conv2d(F.pad(x, (front, back, front, back)), weight)


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
