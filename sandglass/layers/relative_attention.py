"""Multi-head self-attention with learned relative-position terms (CoAtNet; Shaw et al., 2018).

CoAtNet adds a learned scalar per head and relative offset to the logits, ``q_i · k_j / sqrt(d) + w[h, i-j]``,
which unifies a depthwise convolution's translation-equivariant kernel with attention's input-dependent
weights. Shaw et al.'s relation-aware form instead adds learned vectors for the offset to the keys (and
optionally the values), shared across heads. Offsets are clipped at ``max_distance`` so sequences longer than
any seen in training work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.masking import attention_mask, zero_output_padding
from sandglass.layers.shapes import check_image, check_sequence, require_divisible, require_positive
from sandglass.layers.weight_cache import WeightCache


def clipped_offsets(length: int, max_distance: int, device: torch.device | None = None) -> torch.Tensor:
    """Row ``clip(i - j, ±max_distance) + max_distance`` of a ``(2·max_distance + 1)`` table for each (i, j).

    Shape:
        → (T, T) long
    """
    positions = torch.arange(length, device=device)
    return (positions[:, None] - positions[None, :]).clamp(-max_distance, max_distance) + max_distance


def relative_index_2d(height: int, width: int) -> torch.Tensor:
    """Row ``(y_i - y_j + H - 1)(2W - 1) + (x_i - x_j + W - 1)`` of a ``(2H-1)(2W-1)`` table per pixel pair.

    Pixels are numbered row-major, ``i = y_i · W + x_i``.

    Shape:
        → (H·W, H·W) long
    """
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    row_offsets = rows[:, None] - rows[None, :] + height - 1
    col_offsets = cols[:, None] - cols[None, :] + width - 1
    return row_offsets * (2 * width - 1) + col_offsets


def split_heads(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, keys and values from a joint projection, one slice of channels per head.

    Shape:
        qkv: (B, N, 3·C) → 3 × (B, num_heads, N, C / num_heads)
    """
    batch, length, _ = qkv.shape
    qkv = qkv.view(batch, length, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the heads' outputs along channels.

    Shape:
        x: (B, num_heads, N, d) → (B, N, num_heads·d)
    """
    batch, _, length, _ = x.shape
    return x.transpose(1, 2).reshape(batch, length, -1)


class RelativeAttention(nn.Module):
    """Multi-head self-attention with relative-position logits on sequences.

    Default (CoAtNet): ``logits[h, i, j] = q_i · k_j / sqrt(d) + w[h, clip(i - j)]``, a table ``w`` of shape
    ``(num_heads, 2·max_distance + 1)``. ``shaw=True`` (Shaw et al., replacing ``w``):
    ``logits[h, i, j] = q_i · (k_j + a^K[clip(j - i)]) / sqrt(d)`` with ``a^K`` of shape
    ``(2·max_distance + 1, d)`` shared across heads, and with ``shaw_values=True``
    ``o_i = Σ_j p_ij (v_j + a^V[clip(j - i)])``.
    ``d = dim / num_heads``; keys at padding (and, when ``causal``, after the query) are masked out.

    Shape:
        x: (B, T, dim), mask: (B, T) → (B, T, dim)
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        max_distance: int = 64,
        shaw: bool = False,
        shaw_values: bool = False,
        causal: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        require_positive("dim", dim)
        require_positive("num_heads", num_heads)
        require_positive("max_distance", max_distance)
        require_divisible("dim", dim, "num_heads", num_heads)
        if shaw_values and not shaw:
            raise ValueError("shaw_values=True needs shaw=True: value offsets are part of Shaw et al.'s form")
        head_dim = dim // num_heads
        table_size = 2 * max_distance + 1
        self.dim = dim
        self.num_heads = num_heads
        self.max_distance = max_distance
        self.causal = causal
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.attn_dropout = nn.Dropout(dropout)
        self.relative_bias = None if shaw else nn.Parameter(torch.zeros(num_heads, table_size))
        self.key_offsets = nn.Parameter(torch.zeros(table_size, head_dim)) if shaw else None
        self.value_offsets = nn.Parameter(torch.zeros(table_size, head_dim)) if shaw_values else None
        for table in (self.relative_bias, self.key_offsets, self.value_offsets):
            if table is not None:
                nn.init.trunc_normal_(table, std=0.02)
        self.bias_cache = WeightCache()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.dim, type(self).__name__)
        length = x.shape[1]
        q, k, v = split_heads(self.qkv(x), self.num_heads)
        if self.relative_bias is not None:
            # Without gradients the bias of the last length is kept (translation meets a few lengths in turn).
            bias = self.bias_cache.derived(
                self.relative_bias, lambda table: self.offset_bias(table, length, q.dtype), tag=(length, q.dtype)
            )
        else:
            # offsets.T holds clip(j - i) at [i, j]: Shaw's key-minus-query direction.
            offsets = clipped_offsets(length, self.max_distance, x.device)
            bias = (torch.einsum("bhid,ijd->bhij", q, self.key_offsets[offsets.T]) * self.scale).to(q.dtype)
        allowed = attention_mask(mask, length, length, self.causal, x.device)
        if allowed is not None:
            # A finite floor rather than -inf keeps a sequence with no real token free of NaN.
            bias = torch.where(allowed, bias, torch.finfo(bias.dtype).min)
        if self.value_offsets is None:
            dropout_p = self.attn_dropout.p if self.training else 0.0
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        else:
            weights = torch.softmax(q @ k.transpose(-2, -1) * self.scale + bias, dim=-1)
            weights = self.attn_dropout(weights)
            heads = weights @ v + torch.einsum("bhij,ijd->bhid", weights, self.value_offsets[offsets.T])
        return zero_output_padding(self.out(merge_heads(heads)), mask)

    def offset_bias(self, table: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
        """CoAtNet's ``w[h, clip(i - j)]`` for every query ``i`` and key ``j``, in ``dtype`` (under autocast the
        table stays float32 while the queries are half precision; SDPA wants one dtype).

        Shape:
            table: (num_heads, 2·max_distance + 1) → (1, num_heads, T, T)
        """
        return table[:, clipped_offsets(length, self.max_distance, table.device)].unsqueeze(0).to(dtype)


class RelativeAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of an image with CoAtNet's 2-D relative bias.

    ``logits[h, i, j] = q_i · k_j / sqrt(d) + w[h, (y_i - y_j + H - 1)(2W - 1) + (x_i - x_j + W - 1)]``
    over the ``H·W`` pixels, a table ``w`` of shape ``(num_heads, (2H-1)(2W-1))``, ``d = dim / num_heads``.

    Shape:
        x: (B, dim, H, W) → (B, dim, H, W), with ``H = height`` and ``W = width``
    """

    def __init__(self, dim: int, *, num_heads: int, height: int, width: int) -> None:
        super().__init__()
        require_positive("dim", dim)
        require_positive("num_heads", num_heads)
        require_positive("height", height)
        require_positive("width", width)
        require_divisible("dim", dim, "num_heads", num_heads)
        self.dim = dim
        self.num_heads = num_heads
        self.height = height
        self.width = width
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.relative_bias = nn.Parameter(torch.zeros(num_heads, (2 * height - 1) * (2 * width - 1)))
        nn.init.trunc_normal_(self.relative_bias, std=0.02)
        self.register_buffer("relative_index", relative_index_2d(height, width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.dim, type(self).__name__)
        batch, channels, height, width = x.shape
        if (height, width) != (self.height, self.width):
            raise ValueError(
                f"{type(self).__name__} was built for {self.height}x{self.width} images but the input is "
                f"{height}x{width} (shape {tuple(x.shape)}); "
                f"expected (B, {self.dim}, {self.height}, {self.width})"
            )
        pixels = x.flatten(2).transpose(1, 2)
        q, k, v = split_heads(self.qkv(pixels), self.num_heads)
        bias = self.relative_bias[:, self.relative_index].unsqueeze(0).to(q.dtype)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(merge_heads(heads)).transpose(1, 2).reshape(batch, channels, height, width)
