"""The maximum of each row (or column) of a wide matrix and the first index that holds it, faster than ``max(dim)``.

On CPU, ``Tensor.max(dim)`` and ``argmax`` keep a running index beside the running maximum and are not
vectorized: over a block of frame logits (256 × 4,000) they take about as long as a tenth of the vocabulary
projection that made them. ``amax`` has no index to keep and runs about twelve times faster, so the reduction
runs in two levels: the maximum of every block of ``block`` entries, then the first block that holds the
maximum, then the first entry of that block that does. The result is exactly ``max(dim)``'s.

:func:`row_max` reduces along the rows, the contiguous dimension. Scores of a reduced precision (bf16 logits
under autocast) are widened to float32 first, which is exact: reductions along the contiguous dimension of
bf16 are not vectorized on CPU, and the widening plus the float32 reduction take about half their time
(256 × 8,000: 0.60 against 1.13 ms). :func:`column_max` reduces down the columns of a matrix laid out the other
way, ``(V, R)``; that reduction runs vectorized across the contiguous dimension in any precision, so nothing
is widened.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK_COLUMNS = 160


@dataclass(frozen=True)
class RowMax:
    """Each row's (or column's) maximum and the first index that holds it.

    Shape:
        values: (R,) float32 for bf16 or float16 scores in :func:`row_max`, else their dtype; indices: (R,) long
    """

    values: torch.Tensor
    indices: torch.Tensor


def row_max(scores: torch.Tensor, *, block: int = BLOCK_COLUMNS) -> RowMax:
    """``scores.max(dim=-1)`` of a matrix: the largest value of each row and the first column that holds it.

        values[r] = max_v scores[r, v],   indices[r] = min {v : scores[r, v] = values[r]}

    Shape:
        scores: (R, V) → RowMax(values (R,), indices (R,))
    """
    if scores.dim() != 2:
        raise ValueError(f"expected scores of shape (R, V), got {tuple(scores.shape)}")
    if scores.dtype in (torch.bfloat16, torch.float16):
        scores = scores.float()
    return _first_max(scores, 1, block)


def column_max(scores: torch.Tensor, *, block: int = BLOCK_COLUMNS) -> RowMax:
    """``scores.max(dim=0)`` of a matrix: the largest value of each column and the first row that holds it.

        values[r] = max_v scores[v, r],   indices[r] = min {v : scores[v, r] = values[r]}

    Shape:
        scores: (V, R) → RowMax(values (R,), indices (R,))
    """
    if scores.dim() != 2:
        raise ValueError(f"expected scores of shape (V, R), got {tuple(scores.shape)}")
    return _first_max(scores, 0, block)


def _first_max(scores: torch.Tensor, dim: int, block: int) -> RowMax:
    """The two-level maximum along ``dim`` (0 or 1) of a matrix."""
    size = scores.shape[dim]
    if size <= block or scores.shape[1 - dim] == 0:
        values, indices = scores.max(dim=dim)
        return RowMax(values, indices)
    whole = size // block * block
    block_max = scores.narrow(dim, 0, whole).unflatten(dim, (whole // block, block)).amax(dim=dim + 1)
    if whole < size:
        tail_max = scores.narrow(dim, whole, size - whole).amax(dim=dim, keepdim=True)
        block_max = torch.cat([block_max, tail_max], dim=dim)
    values, first_block = block_max.max(dim=dim)
    # Entries past the last one (in a short final block) read the last one again: they come after it, so the
    # first maximum found in the block is never one of them.
    offsets = torch.arange(block, device=scores.device).unsqueeze(1 - dim)
    read = (first_block.unsqueeze(dim) * block + offsets).clamp_(max=size - 1)
    within = scores.gather(dim, read).max(dim=dim).indices
    return RowMax(values, first_block * block + within)
