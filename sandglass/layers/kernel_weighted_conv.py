"""Kernel-weighted convolution (CNN-Kernel-Attention, DESIGN.md §2), 1-D and 2-D.

A squeeze-and-excitation relative that weights whole kernels instead of output channels: each kernel ``W[o]``
has a learned vector ``v[o]``, and a global context vector decides how much of each kernel the sample uses,

    z = FC(g),   a[o] = sigmoid(z · v[o]),   y = conv(x, a[o] · W[o]) + b[o].

Since ``a[o]`` scales a whole kernel, ``conv(x, a[o] · W[o]) = a[o] · conv(x, W[o])``: one ordinary
convolution for the batch, then a per-sample (per-position when causal) scale. No per-sample convolution
is needed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sandglass.layers.context_conv import ContextConvBase, conv1d_same, conv2d_same, image_context, sequence_context
from sandglass.layers.masking import zero_output_padding, zero_padding
from sandglass.layers.shapes import check_image, check_sequence


class _KernelWeightedConvNd(ContextConvBase):
    """Parameters and kernel weights shared by the 1-D and 2-D layers.

    The constructor is the 2-D layer's; the 1-D layer adds ``causal``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, reduction: int = 4, bias: bool = True
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, reduction=reduction)
        hidden = max(1, in_channels // reduction)

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reduce = nn.Linear(in_channels, hidden)
        self.kernel_keys = nn.Parameter(torch.randn(out_channels, hidden) / math.sqrt(hidden))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv's default

    def kernel_weights(self, context: torch.Tensor) -> torch.Tensor:
        """``a[o] = sigmoid(FC(g) · v[o])``, the weight of kernel ``o`` for each context vector.

        Shape:
            context: (..., C_in) → (..., C_out)
        """
        return torch.sigmoid(self.reduce(context) @ self.kernel_keys.T)


class KernelWeightedConv(_KernelWeightedConvNd):
    """1-D convolution whose kernels are weighted per sample by a global context vector.

    ``g = mean_{real t} x_t`` (causal: ``g_t = mean_{real s≤t} x_s``), ``a[o] = sigmoid(FC(g) · v[o])``,
    ``y[t, o] = a[o] · Σ_{i,k} W[o, i, k] · x̃[t + k, i] + b[o]`` with ``x̃`` the input zero-padded by
    ``ks - 1`` positions, the larger half in front (all in front when causal).
    ``FC: C_in → max(1, C_in // reduction)``.

    Shape:
        x: (B, T, C_in), mask: (B, T) or None → (B, T, C_out), zero at padding
    """

    spatial_dims = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        reduction: int = 4,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, reduction=reduction, bias=bias)
        self.causal = causal

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        x = zero_padding(x, mask)
        weights = self.kernel_weights(sequence_context(x, mask, self.causal))  # (B, 1 or T, C_out)
        responses = conv1d_same(x.transpose(1, 2), self.weight, causal=self.causal).transpose(1, 2)
        y = weights * responses
        if self.bias is not None:
            y = y + self.bias
        return zero_output_padding(y, mask)


class KernelWeightedConv2d(_KernelWeightedConvNd):
    """2-D convolution whose kernels are weighted per sample by the image's mean pixel.

    ``g = mean_{h,w} x[:, h, w]``, ``a[o] = sigmoid(FC(g) · v[o])``,
    ``y[o, h, w] = a[o] · Σ_{i,k,l} W[o, i, k, l] · x̃[i, h + k, w + l] + b[o]`` with ``x̃`` zero-padded by
    ``ks - 1`` rows and columns, the larger half top and left. ``FC: C_in → max(1, C_in // reduction)``.

    Shape:
        x: (B, C_in, H, W) → (B, C_out, H, W)
    """

    spatial_dims = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        weights = self.kernel_weights(image_context(x))  # (B, C_out)
        y = weights[:, :, None, None] * conv2d_same(x, self.weight)
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return y
