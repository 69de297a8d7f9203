"""Relative-position logits for self-attention (Bello et al., 2019; Shaw et al., 2018).

One learned table per spatial axis, shared by all heads: the logit a query at position ``i`` adds for a key at
position ``j`` is ``q_i · E[clip(j - i) + L - 1]``, where the offset is clipped to ``±(L-1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from sandglass.layers.shapes import require_positive


def relative_index(query_positions: torch.Tensor, key_positions: torch.Tensor, max_distance: int) -> torch.Tensor:
    """Table row of each (query, key) pair: ``clip(p_j - p_i, ±(L-1)) + L - 1`` with ``L = max_distance``.

    Shape:
        query_positions: (N,), key_positions: (S,) → (N, S) long
    """
    offsets = key_positions[None, :] - query_positions[:, None]
    return offsets.clamp(-(max_distance - 1), max_distance - 1) + (max_distance - 1)


class RelativeEmbedding(nn.Module):
    """Learned relative-position logits along one axis, shared by heads.

    ``r[b, h, i, j] = q[b, h, i] · E[clip(p_j - p_i, ±(L-1)) + L - 1]``, with a table ``E`` of ``(2L-1, d)``.

    Shape:
        q: (B, Nh, N, d), query_positions: (N,), key_positions: (S,) → (B, Nh, N, S)
    """

    def __init__(self, max_distance: int, head_channels: int) -> None:
        super().__init__()
        require_positive("max_distance", max_distance)
        require_positive("head_channels", head_channels)
        self.max_distance = max_distance
        self.table = nn.Parameter(torch.randn(2 * max_distance - 1, head_channels) * head_channels**-0.5)

    def forward(self, q: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
        # Score every query against every table row once, then pick the row of each (query, key) offset:
        # (B, Nh, N, 2L-1) memory instead of materializing a (N, S, d) embedding per pair.
        scores = q @ self.table.t()
        index = relative_index(query_positions, key_positions, self.max_distance)
        return scores.gather(-1, index.expand(*scores.shape[:-1], index.shape[-1]))

    def extra_repr(self) -> str:
        return f"max_distance={self.max_distance}, head_channels={self.table.shape[1]}"
