"""The position-wise feed-forward network of a Transformer block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.masking import zero_output_padding
from sandglass.layers.shapes import check_sequence, require_positive


class FeedForward(nn.Module):
    """Two linear maps with a GELU between them, applied to each position alone.

    ``y_t = W_2 GELU(W_1 x_t + b_1) + b_2`` with ``W_1`` of shape ``(ffn_ratio · C, C)``.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """

    def __init__(self, dim: int, *, ffn_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        require_positive("dim", dim)
        require_positive("ffn_ratio", ffn_ratio)
        self.dim = dim
        self.fc1 = nn.Linear(dim, ffn_ratio * dim)
        self.fc2 = nn.Linear(ffn_ratio * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.dim, type(self).__name__)
        return zero_output_padding(self.fc2(self.dropout(F.gelu(self.fc1(x)))), mask)
