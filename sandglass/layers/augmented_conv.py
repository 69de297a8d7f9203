"""Attention-augmented convolution (Bello et al., 2019), 1-D and 2-D.

The output concatenates an ordinary convolution (``filters - dv`` channels) with multi-head self-attention
over all positions (``dv`` channels), so every output sees both its neighbourhood and the whole input:

    y = concat(conv_k(x), W_o · MHA(x))
    MHA: [q, k, v] = W_qkv · x split into Nh heads, q̂ = q · (dk/Nh)^-0.5,
         logits[h, i, j] = q̂_{h,i} · k_{h,j} + q̂_{h,i} · E[j - i + L - 1]   (relative tables shared by heads)
         out_{h,i} = Σ_j softmax_j(logits[h, i, :]) · v_{h,j},  heads concatenated
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.channels_last import SequenceConv1d
from sandglass.layers.masking import attention_mask, zero_output_padding, zero_padding
from sandglass.layers.padding import same_padding, same_padding_2d
from sandglass.layers.relative_logits import RelativeEmbedding
from sandglass.layers.shapes import check_image, check_sequence, require_divisible, require_positive


def _check_attention_sizes(dk: int, dv: int, num_heads: int) -> None:
    require_positive("dk", dk)
    require_positive("dv", dv)
    require_positive("num_heads", num_heads)
    require_divisible("dk", dk, "num_heads", num_heads)
    require_divisible("dv", dv, "num_heads", num_heads)


def _check_conv_sizes(in_channels: int, filters: int, kernel_size: int, dv: int) -> None:
    require_positive("in_channels", in_channels)
    require_positive("filters", filters)
    require_positive("kernel_size", kernel_size)
    if dv >= filters:
        raise ValueError(f"dv ({dv}) must be smaller than filters ({filters}): the conv branch makes filters - dv")


def _require_extent(name: str, value: int | None) -> None:
    if value is None:
        raise ValueError(f"{name} is required when relative=True (it sizes the relative-position table)")
    require_positive(name, value)


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, C) → (B, Nh, N, C/Nh); head h holds channels [h·C/Nh, (h+1)·C/Nh)."""
    batch, length, channels = x.shape
    return x.view(batch, length, num_heads, channels // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, Nh, N, C/Nh) → (B, N, C), the inverse of :func:`_split_heads`."""
    batch, num_heads, length, head_channels = x.shape
    return x.transpose(1, 2).reshape(batch, length, num_heads * head_channels)


def _attend(logits: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the allowed keys, then the weighted sum of values.

    Disallowed logits get the dtype's minimum rather than -inf so a query with no allowed key (a padding
    position) gets finite weights instead of NaN; its output is zeroed later.
    """
    if allowed is not None:
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    return logits.softmax(dim=-1) @ v


class AugmentedAttention(nn.Module):
    """Multi-head self-attention branch of :class:`AugmentedConv`, with clipped 1-D relative logits.

    ``[q, k, v] = Linear(x)``, ``logits[h,i,j] = q̂_{h,i}·k_{h,j} + q̂_{h,i}·E[clip(j-i, ±(L-1)) + L - 1]`` with
    ``q̂ = q·(dk/Nh)^-0.5`` and ``L = max_length``; softmax over real keys (and keys ≤ i when causal);
    ``y = Linear_{dv→dv}(concat_h Σ_j α[h,i,j] v_{h,j})``, zeroed at padding.

    Shape:
        x: (B, T, C_in), mask: (B, T) or None → (B, T, dv)
    """

    def __init__(
        self,
        in_channels: int,
        *,
        dk: int,
        dv: int,
        num_heads: int,
        relative: bool = True,
        max_length: int | None = None,
        causal: bool = False,
    ) -> None:
        super().__init__()
        require_positive("in_channels", in_channels)
        _check_attention_sizes(dk, dv, num_heads)
        self.in_channels, self.dk, self.dv, self.num_heads, self.causal = (
            in_channels,
            dk,
            dv,
            num_heads,
            causal,
        )
        self.qkv = nn.Linear(in_channels, 2 * dk + dv)
        self.relative = None
        if relative:
            _require_extent("max_length", max_length)
            self.relative = RelativeEmbedding(max_length, dk // num_heads)
        self.out = nn.Linear(dv, dv)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        length = x.shape[1]
        q, k, v = self.qkv(zero_padding(x, mask)).split([self.dk, self.dk, self.dv], dim=-1)
        q = _split_heads(q, self.num_heads) * (self.dk // self.num_heads) ** -0.5
        k, v = _split_heads(k, self.num_heads), _split_heads(v, self.num_heads)
        logits = q @ k.transpose(-2, -1)
        if self.relative is not None:
            positions = torch.arange(length, device=x.device)
            logits = logits + self.relative(q, positions, positions)
        allowed = attention_mask(mask, length, length, self.causal, x.device)
        heads = _attend(logits, v, allowed)
        return zero_output_padding(self.out(_merge_heads(heads)), mask)


class AugmentedAttention2d(nn.Module):
    """Multi-head self-attention branch of :class:`AugmentedConv2d`, with width and height relative logits.

    ``[q, k, v] = Conv1x1(x)`` over the ``N = H·W`` pixels (row-major); for pixels ``i = (y1, x1)`` and
    ``j = (y2, x2)``: ``logits[h,i,j] = q̂_{h,i}·k_{h,j} + q̂_{h,i}·E_w[x2-x1+W-1] + q̂_{h,i}·E_h[y2-y1+H-1]``,
    ``q̂ = q·(dk/Nh)^-0.5``;
    ``y = Conv1x1_{dv→dv}(concat_h Σ_j softmax_j(logits[h,i,:]) v_{h,j})``.

    Shape:
        x: (B, C_in, H, W) → (B, dv, H, W)
    """

    def __init__(
        self,
        in_channels: int,
        *,
        dk: int,
        dv: int,
        num_heads: int,
        relative: bool = True,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        super().__init__()
        require_positive("in_channels", in_channels)
        _check_attention_sizes(dk, dv, num_heads)
        self.in_channels, self.dk, self.dv, self.num_heads = in_channels, dk, dv, num_heads
        self.height, self.width = height, width
        self.qkv = nn.Conv2d(in_channels, 2 * dk + dv, kernel_size=1)
        self.relative_width = self.relative_height = None
        if relative:
            _require_extent("height", height)
            _require_extent("width", width)
            self.relative_width = RelativeEmbedding(width, dk // num_heads)
            self.relative_height = RelativeEmbedding(height, dk // num_heads)
        self.out = nn.Conv2d(dv, dv, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        batch, _, height, width = x.shape
        if self.relative_width is not None and (height, width) != (self.height, self.width):
            raise ValueError(
                f"{type(self).__name__} with relative=True was built for height={self.height}, "
                f"width={self.width} but the input is {height}x{width}; "
                f"expected (B, {self.in_channels}, {self.height}, {self.width})"
            )
        pixels = self.qkv(x).flatten(2).transpose(1, 2)
        q, k, v = pixels.split([self.dk, self.dk, self.dv], dim=-1)
        q = _split_heads(q, self.num_heads) * (self.dk // self.num_heads) ** -0.5
        k, v = _split_heads(k, self.num_heads), _split_heads(v, self.num_heads)
        logits = q @ k.transpose(-2, -1)
        if self.relative_width is not None:
            positions = torch.arange(height * width, device=x.device)
            rows, cols = positions // width, positions % width
            logits = logits + self.relative_width(q, cols, cols) + self.relative_height(q, rows, rows)
        heads = _merge_heads(_attend(logits, v, None))
        return self.out(heads.transpose(1, 2).reshape(batch, self.dv, height, width))


class AugmentedConv(nn.Module):
    """Attention-augmented 1-D convolution: a convolution concatenated with multi-head self-attention.

    ``y = concat(Conv1d_k(x) → filters - dv, AugmentedAttention(x) → dv)``; the convolution keeps the length
    with the larger half of its ``k - 1`` padding in front (all of it when causal), the attention is
    :class:`AugmentedAttention` (relative offsets clipped to ``±(max_length-1)``, so any length works).
    Outputs at padding are zero.

    Shape:
        x: (B, T, C_in), mask: (B, T) or None → (B, T, filters)
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel_size: int,
        *,
        dk: int,
        dv: int,
        num_heads: int,
        relative: bool = True,
        max_length: int | None = None,
        causal: bool = False,
    ) -> None:
        super().__init__()
        _check_conv_sizes(in_channels, filters, kernel_size, dv)
        self.in_channels, self.filters, self.causal = in_channels, filters, causal
        self.conv = SequenceConv1d(in_channels, filters - dv, kernel_size, padding=same_padding(kernel_size, causal))
        self.attention = AugmentedAttention(
            in_channels,
            dk=dk,
            dv=dv,
            num_heads=num_heads,
            relative=relative,
            max_length=max_length,
            causal=causal,
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.in_channels, type(self).__name__)
        x = zero_padding(x, mask)
        local = self.conv(x)
        y = torch.cat([local, self.attention(x, mask)], dim=-1)
        return zero_output_padding(y, mask)


class AugmentedConv2d(nn.Module):
    """Attention-augmented 2-D convolution: a convolution concatenated with self-attention over pixels.

    ``y = concat(Conv2d_k(x) → filters - dv, AugmentedAttention2d(x) → dv)``; the convolution keeps the size
    with the larger half of its ``k - 1`` padding at the top and left. With ``relative=True`` the relative
    tables are sized by ``height`` and ``width`` and the input must have exactly that extent.

    Shape:
        x: (B, C_in, H, W) → (B, filters, H, W)
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel_size: int,
        *,
        dk: int,
        dv: int,
        num_heads: int,
        relative: bool = True,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        super().__init__()
        _check_conv_sizes(in_channels, filters, kernel_size, dv)
        self.in_channels, self.filters = in_channels, filters
        self.padding = same_padding_2d(kernel_size)
        self.conv = nn.Conv2d(in_channels, filters - dv, kernel_size)
        self.attention = AugmentedAttention2d(
            in_channels, dk=dk, dv=dv, num_heads=num_heads, relative=relative, height=height, width=width
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        return torch.cat([self.conv(F.pad(x, self.padding)), self.attention(x)], dim=1)
