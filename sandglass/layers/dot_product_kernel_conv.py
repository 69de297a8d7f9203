"""Dot-product-generated kernel convolution (CNN-Kernel-Attention, DESIGN.md §2), 1-D and 2-D.

Every (output, input) channel pair attends over a small bank of ``M`` spatial kernels ``K[m]`` with keys
``κ[m]``; its query mixes a learned query per input channel, one per output channel and the global
context ``g``:

    r = FC(g),   q[o, i] = q_in[i] ⊙ q_out[o] ⊙ r,   α[o, i, :] = softmax_m(q[o, i] · κ[m]),
    W[o, i] = Σ_m α[o, i, m] · K[m],   y = conv(x, W) + b.

Without ``causal`` every sample has one kernel set, so the sample kernels ``W`` are built (small: ``M`` bank
kernels mixed per channel pair) and applied in one batched product: in 1-D to the sequence's unfolded windows
(``α`` is laid out input-major, so the kernels come out as that product's right-hand side with no copy; on the
CPU mixture and product are one function, :func:`mixed_kernel_conv`), in 2-D as one grouped convolution. With
``causal`` the kernel changes with the position; since ``W`` is a mixture of bank kernels,
``y[o] = Σ_{i,m} α[o, i, m] · z[i, m] + b[o]`` with ``z[i, m] = K[m] * x_i``: one depthwise convolution (``M`` kernels
per channel), then one batched contraction per position.

In storage the bank index comes first and the input channel before the output one: the arrays hold
``α[m, i, o]`` (the equations' ``α[o, i, m]``) and tap-major kernels ``W[k, i, o]`` (the equations' ``W[o, i, k]``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.channels_last import sequence_windows
from sandglass.layers.context_conv import ContextConvBase, conv1d_same, image_context, sequence_context
from sandglass.layers.kernel_mixture import bank_mixture_weights, mixed_kernel_conv, mixed_kernels
from sandglass.layers.masking import zero_output_padding, zero_padding
from sandglass.layers.padding import same_padding, same_padding_2d
from sandglass.layers.shapes import check_image, check_sequence


def mix_bank_responses(alpha: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """``y[o, p] = Σ_{i,m} α[p, m, i, o] · z[i, m, p]``: a kernel mixture per sample and position ``p``.

    Shape:
        alpha: (B, P, M, C_in, C_out), responses: (B, C_in, M, P) → (B, C_out, P)
    """
    return torch.einsum("bpmio,bimp->bop", alpha, responses)


def grouped_sample_conv2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each image convolved with its own kernels, all images at once as one grouped convolution.

        y[b, o] = Σ_i W[b, o, i] ⋆ x[b, i]

    Shape:
        x: (B, C_in, H', W') zero-padded, kernels: (B, C_out, C_in, ks, ks) → (B, C_out, H' - ks + 1, W' - ks + 1)
    """
    batch, out_channels = kernels.shape[:2]
    images = x.reshape(1, -1, *x.shape[2:])
    y = F.conv2d(images, kernels.reshape(batch * out_channels, *kernels.shape[2:]), groups=batch)
    return y.view(batch, out_channels, *y.shape[2:])


def sample_window_conv(x: torch.Tensor, kernels: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """Each sample convolved with its own tap-major kernels, as one batched product over unfolded windows.

        y[b, t, o] = Σ_{k,i} W[b, k, i, o] · x̃[b, t + k, i],   x̃ = x with ``padding`` zeros (front, back)

    Shape:
        x: (B, T, C_in), kernels: (B, ks, C_in, C_out) → (B, T + front + back - ks + 1, C_out)
    """
    batch, kernel_size, in_channels, out_channels = kernels.shape
    windows = sequence_windows(x, kernel_size, *padding).transpose(-1, -2)  # (B, T', ks, C_in)
    return windows.flatten(2) @ kernels.reshape(batch, kernel_size * in_channels, out_channels)


class _DotProductKernelConvNd(ContextConvBase):
    """Parameters and mixture weights shared by the 1-D and 2-D layers.

    The constructor is the 2-D layer's; the 1-D layer adds ``causal``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        num_kernels: int = 4,
        key_dim: int = 16,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, num_kernels=num_kernels, key_dim=key_dim)
        self.num_kernels = num_kernels
        bound = 1.0 / math.sqrt(in_channels * kernel_size**self.spatial_dims)  # nn.Conv's default range

        self.kernel_bank = nn.Parameter(torch.empty(num_kernels, *self.kernel_shape).uniform_(-bound, bound))
        self.bank_keys = nn.Parameter(torch.randn(num_kernels, key_dim) / math.sqrt(key_dim))
        self.in_queries = nn.Parameter(torch.randn(in_channels, key_dim))
        self.out_queries = nn.Parameter(torch.randn(out_channels, key_dim))
        self.context_query = nn.Linear(in_channels, key_dim)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # r starts near 1, so the initial queries are q_in ⊙ q_out with logits of unit scale: channel pairs
        # start with different kernels instead of all with the bank's mean.
        nn.init.ones_(self.context_query.bias)

    def keys_and_queries(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys ``κ[m] ⊙ q_in[i]`` and the queries ``q_out[o] ⊙ FC(g)`` of each context vector.

        Shape:
            context: (..., C_in) → keys: (M, C_in, D), queries: (..., C_out, D)
        """
        queries = self.context_query(context).unsqueeze(-2) * self.out_queries
        keys = self.bank_keys.unsqueeze(1) * self.in_queries
        return keys, queries

    def mixture_weights(self, context: torch.Tensor) -> torch.Tensor:
        """``α[m, i, o] = softmax_m((q_in[i] ⊙ q_out[o] ⊙ FC(g)) · κ[m])`` for each context vector.

        The bank index comes first so the softmax runs over an outer dimension, which vectorizes over the
        ``C_in · C_out`` channel pairs (a softmax over a last dimension of a few kernels is slow on CPUs).

        Shape:
            context: (..., C_in) → (..., M, C_in, C_out)
        """
        return bank_mixture_weights(*self.keys_and_queries(context))

    def sample_kernels(self, context: torch.Tensor) -> torch.Tensor:
        """``W[k, i, o] = Σ_m α[m, i, o] · K[m, k]`` for each sample's context, tap-major.

        Shape:
            context: (B, C_in) → (B, ks^d, C_in, C_out)
        """
        keys, queries = self.keys_and_queries(context)
        return mixed_kernels(keys, queries, self.kernel_bank.flatten(1))

    def add_bias(self, y: torch.Tensor) -> torch.Tensor:
        """``y[o, p] + b[o]``.

        Shape:
            y: (B, C_out, P) → (B, C_out, P)
        """
        return y if self.bias is None else y + self.bias[:, None]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"num_kernels={self.num_kernels}, bias={self.bias is not None}"
        )


class DotProductKernelConv(_DotProductKernelConvNd):
    """1-D convolution whose kernels are attention-weighted mixtures of a small kernel bank, per sample.

    ``g = mean_{real t} x_t`` (causal: ``g_t = mean_{real s≤t} x_s``, a kernel per position),
    ``α[o, i, :] = softmax_m((q_in[i] ⊙ q_out[o] ⊙ FC(g)) · κ[m])``, ``W[o, i] = Σ_m α[o, i, m] · K[m]``,
    ``y[t, o] = Σ_{i,k} W[o, i, k] · x̃[t + k, i] + b[o]`` with ``x̃`` the input zero-padded by ``ks - 1``
    positions, the larger half in front (all in front when causal). ``FC: C_in → key_dim``.
    With ``causal=True`` the per-position weights α take ``B·T·C_out·C_in·M`` memory. On the CPU the
    temporaries of the mixture's size stay allocated between calls, once per thread
    (:func:`sandglass.layers.scratch.release_scratch` frees them).

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
        num_kernels: int = 4,
        key_dim: int = 16,
        causal: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, num_kernels=num_kernels, key_dim=key_dim, bias=bias)
        self.causal = causal

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._forward(x, mask, fused=self._runs_fused(x))

    def reference_forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` with the kernels made by :func:`mixed_kernels` and applied by
        :func:`sample_window_conv`, two functions with their own backward: the slow reference of the fused path.

        Shape:
            x: (B, T, C_in), mask: (B, T) or None → (B, T, C_out)
        """
        return self._forward(x, mask, fused=False)

    def _runs_fused(self, x: torch.Tensor) -> bool:
        """Whether :func:`mixed_kernel_conv` applies: on the CPU (where its scratch buffers save page faults;
        it is untested on CUDA), without ``causal``, outside autocast and with the input in the weights' dtype."""
        return (
            x.device.type == "cpu"
            and not self.causal
            and not torch.is_autocast_enabled("cpu")
            and x.dtype == self.kernel_bank.dtype
        )

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None, fused: bool) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        x = zero_padding(x, mask)
        context = sequence_context(x, mask, self.causal)
        if self.causal:
            y = self.add_bias(self.causal_mix(x.transpose(1, 2), self.mixture_weights(context))).transpose(1, 2)
        else:
            padding = same_padding(self.kernel_size)
            if fused:
                keys, queries = self.keys_and_queries(context.squeeze(1))
                y = mixed_kernel_conv(x, keys, queries, self.kernel_bank.flatten(1), padding)
            else:
                kernels = self.sample_kernels(context.squeeze(1))  # (B, ks, C_in, C_out)
                y = sample_window_conv(x, kernels, padding)
            y = y if self.bias is None else y + self.bias
        return zero_output_padding(y, mask)

    def causal_mix(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Per-position kernels: the bank responses ``z[i, m] = K[m] * x_i``, mixed by each position's ``α``.

        Shape:
            x: (B, C_in, T), alpha: (B, T, M, C_in, C_out) → (B, C_out, T)
        """
        batch, channels, length = x.shape
        per_channel = x.reshape(batch * channels, 1, length)
        responses = conv1d_same(per_channel, self.kernel_bank.unsqueeze(1), causal=True)
        return mix_bank_responses(alpha, responses.view(batch, channels, self.num_kernels, length))


class DotProductKernelConv2d(_DotProductKernelConvNd):
    """2-D convolution whose kernels are attention-weighted mixtures of a small kernel bank, per sample.

    ``g = mean_{h,w} x[:, h, w]``, ``α[o, i, :] = softmax_m((q_in[i] ⊙ q_out[o] ⊙ FC(g)) · κ[m])``,
    ``W[o, i] = Σ_m α[o, i, m] · K[m]``, ``y[o, h, w] = Σ_{i,k,l} W[o, i, k, l] · x̃[i, h + k, w + l] + b[o]``
    with ``x̃`` zero-padded by ``ks - 1`` rows and columns, the larger half top and left.
    ``FC: C_in → key_dim``.

    Shape:
        x: (B, C_in, H, W) → (B, C_out, H, W)
    """

    spatial_dims = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        kernels = self.sample_kernels(image_context(x))  # (B, ks², C_in, C_out)
        kernels = kernels.permute(0, 3, 2, 1).unflatten(-1, self.kernel_shape)  # (B, C_out, C_in, ks, ks)
        y = grouped_sample_conv2d(F.pad(x, same_padding_2d(self.kernel_size)), kernels)
        return self.add_bias(y.flatten(2)).view_as(y)
