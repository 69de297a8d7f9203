"""Pre-norm Transformer block on relative self-attention (CoAtNet's attention stage)."""

from __future__ import annotations

import torch
from torch import nn

from sandglass.layers.feed_forward import FeedForward
from sandglass.layers.masking import zero_output_padding
from sandglass.layers.relative_attention import RelativeAttention
from sandglass.layers.shapes import check_sequence, require_positive


class TransformerBlock(nn.Module):
    """Relative self-attention then a feed-forward network, each a pre-norm residual branch.

    ``h = x + Attn(LN_1(x))``, ``y = h + FFN(LN_2(h))`` with ``Attn`` a :class:`RelativeAttention` and
    ``FFN = Linear(C → ffn_ratio·C) → GELU → Linear(ffn_ratio·C → C)``. ``dropout`` applies to the attention
    weights and to each branch's output, ``activation_dropout`` (``None``: the same as ``dropout``) to the FFN's
    hidden activations, fairseq's split of the two.

    Shape:
        x: (B, T, dim), mask: (B, T) → (B, T, dim)
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        ffn_ratio: int = 4,
        max_distance: int = 64,
        shaw: bool = False,
        causal: bool = False,
        dropout: float = 0.0,
        activation_dropout: float | None = None,
    ) -> None:
        super().__init__()
        require_positive("dim", dim)
        self.dim = dim
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = RelativeAttention(
            dim, num_heads=num_heads, max_distance=max_distance, shaw=shaw, causal=causal, dropout=dropout
        )
        self.ffn_norm = nn.LayerNorm(dim)
        hidden_dropout = dropout if activation_dropout is None else activation_dropout
        self.ffn = FeedForward(dim, ffn_ratio=ffn_ratio, dropout=hidden_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.dim, type(self).__name__)
        x = x + self.dropout(self.attn(self.attn_norm(x), mask))
        x = x + self.dropout(self.ffn(self.ffn_norm(x), mask))
        return zero_output_padding(x, mask)
