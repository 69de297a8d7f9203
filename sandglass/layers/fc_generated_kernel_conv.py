"""FC-generated kernel convolution (CNN-Kernel-Attention, DESIGN.md §2), 1-D and 2-D.

Each output channel has a learned embedding ``e[o]``; a small gated network turns it and the global context
vector ``g`` into that channel's kernel, so every sample gets its own kernels:

    h[o] = sigmoid(A·g) ⊙ (B·e[o]),   W[o] = reshape(C·h[o]) to (C_in, ks[, ks]),   y = conv(x, W) + b.

``W[o]`` is linear in the gate ``s = sigmoid(A·g)``: with ``u[j] = conv(x, reshape(C.weight[:, j]))`` (one
kernel per hidden unit) and ``u_0 = conv(x, reshape(C.bias))``,

    y[o] = Σ_j s[j] · (B·e[o])[j] · u[j] + u_0 + b[o],

so one ordinary convolution with ``hidden + 1`` kernels serves the whole batch; no per-sample kernel is built.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sandglass.layers.context_conv import ContextConvBase, conv1d_same, conv2d_same, image_context, sequence_context
from sandglass.layers.masking import zero_output_padding, zero_padding
from sandglass.layers.shapes import check_image, check_sequence


class _FCGeneratedKernelConvNd(ContextConvBase):
    """Parameters and the generated-kernel mixing shared by the 1-D and 2-D layers.

    The constructor is the 2-D layer's; the 1-D layer adds ``causal``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        embed_dim: int = 16,
        hidden: int = 32,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, embed_dim=embed_dim, hidden=hidden)
        fan_in = in_channels * kernel_size**self.spatial_dims

        self.kernel_embeddings = nn.Parameter(torch.randn(out_channels, embed_dim))
        self.context_gate = nn.Linear(in_channels, hidden)  # A
        self.embedding_proj = nn.Linear(embed_dim, hidden)  # B
        self.kernel_generator = nn.Linear(hidden, fan_in)  # C
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # h starts with variance ≈ 1/12 (gate ≈ 1/2, B·e ≈ 1/3 for unit-normal e), so this gives the generated
        # kernels about nn.Conv's default variance, 1 / (3 · fan_in).
        nn.init.normal_(self.kernel_generator.weight, std=2.0 / math.sqrt(hidden * fan_in))
        nn.init.zeros_(self.kernel_generator.bias)

    def basis_kernels(self) -> torch.Tensor:
        """The generator's columns, then its bias, as kernels: ``W[o] = Σ_j h[o, j] · basis[j] + basis[-1]``.

        Shape:
            → (hidden + 1, C_in, ks[, ks])
        """
        columns = self.kernel_generator.weight.T
        offset = self.kernel_generator.bias.unsqueeze(0)
        return torch.cat([columns, offset]).view(-1, self.in_channels, *self.kernel_shape)

    def mix(self, context: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """``y[o] = Σ_j s[j] · (B·e[o])[j] · u[j] + u_0 + b[o]`` from the responses to :meth:`basis_kernels`.

        Shape:
            context: (..., C_in) broadcastable to responses: (..., hidden + 1) → (..., C_out)
        """
        gates = torch.sigmoid(self.context_gate(context))
        codes = self.embedding_proj(self.kernel_embeddings)  # (C_out, hidden)
        y = (gates * responses[..., :-1]) @ codes.T + responses[..., -1:]
        return y if self.bias is None else y + self.bias


class FCGeneratedKernelConv(_FCGeneratedKernelConvNd):
    """1-D convolution whose kernels are generated per sample from a global context and kernel embeddings.

    ``g = mean_{real t} x_t`` (causal: ``g_t = mean_{real s≤t} x_s``, a kernel per position),
    ``h[o] = sigmoid(A·g) ⊙ (B·e[o])``, ``W[o] = reshape(C·h[o])`` to ``(C_in, ks)``,
    ``y[t, o] = Σ_{i,k} W[o, i, k] · x̃[t + k, i] + b[o]`` with ``x̃`` the input zero-padded by ``ks - 1``
    positions, the larger half in front (all in front when causal).
    ``A: C_in → hidden``, ``B: embed_dim → hidden``, ``C: hidden → C_in·ks``.

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
        embed_dim: int = 16,
        hidden: int = 32,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, embed_dim=embed_dim, hidden=hidden, bias=bias)
        self.causal = causal

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        x = zero_padding(x, mask)
        context = sequence_context(x, mask, self.causal)  # (B, 1 or T, C_in)
        responses = conv1d_same(x.transpose(1, 2), self.basis_kernels(), causal=self.causal).transpose(1, 2)
        return zero_output_padding(self.mix(context, responses), mask)


class FCGeneratedKernelConv2d(_FCGeneratedKernelConvNd):
    """2-D convolution whose kernels are generated per sample from the mean pixel and kernel embeddings.

    ``g = mean_{h,w} x[:, h, w]``, ``h[o] = sigmoid(A·g) ⊙ (B·e[o])``, ``W[o] = reshape(C·h[o])`` to
    ``(C_in, ks, ks)``, ``y[o, h, w] = Σ_{i,k,l} W[o, i, k, l] · x̃[i, h + k, w + l] + b[o]`` with ``x̃``
    zero-padded by ``ks - 1`` rows and columns, the larger half top and left.
    ``A: C_in → hidden``, ``B: embed_dim → hidden``, ``C: hidden → C_in·ks²``.

    Shape:
        x: (B, C_in, H, W) → (B, C_out, H, W)
    """

    spatial_dims = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        context = image_context(x)[:, None, None, :]  # (B, 1, 1, C_in)
        responses = conv2d_same(x, self.basis_kernels()).permute(0, 2, 3, 1)  # (B, H, W, hidden + 1)
        return self.mix(context, responses).permute(0, 3, 1, 2)
