"""Decoding the frame-wise outputs of a CTC model: best-path (greedy) decoding and prefix beam search.

A labeling's probability is the sum over its alignments (frame paths that give it once repeats are collapsed
and blanks dropped), ``p(l | x) = Σ_{π: B(π) = l} Π_t p_t(π_t)``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from sandglass.decoding.autoregressive import Hypothesis
from sandglass.layers.shapes import require_positive


def _check_frames(log_probs: torch.Tensor, mask: torch.Tensor) -> None:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must have shape (B, T, V), got {tuple(log_probs.shape)}")
    if mask.dtype != torch.bool or mask.shape != log_probs.shape[:2]:
        raise ValueError(
            f"mask must be a bool mask of shape (B, T) = {tuple(log_probs.shape[:2])}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )


def ctc_greedy_decode(log_probs: torch.Tensor, mask: torch.Tensor, *, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: argmax per frame, collapse repeats, drop blanks and padding.

    A blank between two equal labels separates them (``a _ a`` → ``a a``); a padding frame never counts.

    Shape:
        log_probs: (B, T, V), mask: (B, T) → B lists of token ids
    """
    _check_frames(log_probs, mask)
    return ctc_collapse(log_probs.argmax(dim=-1), mask, blank=blank)


def ctc_collapse(labels: torch.Tensor, mask: torch.Tensor, *, blank: int = 0) -> list[list[int]]:
    """The labeling of a frame path: repeats collapsed, then blanks and padding frames dropped.

    Shape:
        labels: (B, T) long, mask: (B, T) bool → B lists of token ids
    """
    if labels.dim() != 2 or mask.dtype != torch.bool or mask.shape != labels.shape:
        raise ValueError(
            f"expected labels (B, T) and a bool mask of the same shape, got {tuple(labels.shape)} and "
            f"{mask.dtype} {tuple(mask.shape)}"
        )
    previous = torch.cat([torch.full_like(labels[:, :1], -1), labels[:, :-1]], dim=1)
    keep = (labels != previous) & (labels != blank) & mask
    counts = keep.sum(dim=1).tolist()
    return [row.tolist() for row in torch.split(labels[keep], counts)]


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def _prefix_beam_search_one(
    frames: np.ndarray, candidates: list[list[int]], blank: int, beam_size: int
) -> list[Hypothesis]:
    """Prefix beam search over one sequence's real frames, ``frames[t, v] = log p_t(v)``; only the labels in
    ``candidates[t]`` (the likeliest of frame ``t``) extend a prefix."""
    # Each prefix keeps log p(prefix, ending in blank) and log p(prefix, ending in its last label).
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    for frame, likely in zip(frames, candidates, strict=True):  # numpy rows: no list of every label's score
        extended: defaultdict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (ends_blank, ends_label) in beams.items():
            total = _log_add(ends_blank, ends_label)
            staying = extended[prefix]
            staying[0] = _log_add(staying[0], total + frame[blank])
            last = prefix[-1] if prefix else None
            if last is not None:
                # The last label repeated without a blank collapses into the same prefix.
                staying[1] = _log_add(staying[1], ends_label + frame[last])
            for label in likely:
                if label == blank:
                    continue
                longer = extended[prefix + (label,)]
                # A repeat of the last label only makes a new label after a blank.
                source = ends_blank if label == last else total
                longer[1] = _log_add(longer[1], source + frame[label])
        ranked = sorted(extended.items(), key=lambda item: _log_add(*item[1]), reverse=True)
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked[:beam_size]}
    ranked_final = sorted(beams.items(), key=lambda item: _log_add(*item[1]), reverse=True)
    return [Hypothesis(list(prefix), _log_add(*scores)) for prefix, scores in ranked_final]


def ctc_prefix_beam_search(
    log_probs: torch.Tensor, mask: torch.Tensor, *, blank: int = 0, beam_size: int = 5
) -> list[list[Hypothesis]]:
    """CTC prefix beam search in log space, keeping the ``beam_size`` labelings (prefixes) with the highest
    total probability over their alignments; a hypothesis' score is that log-probability ``log p(l | x)``
    (summed over the alignments the search kept). At each frame only the ``beam_size + 1`` likeliest labels
    extend a prefix (chosen in one ``topk`` over all frames; ties between equal log-probabilities are broken
    arbitrarily).

    Shape:
        log_probs: (B, T, V), mask: (B, T) → B lists of up to ``beam_size`` hypotheses, best first
    """
    _check_frames(log_probs, mask)
    require_positive("beam_size", beam_size)
    frames = log_probs.detach().double().cpu()
    mask = mask.cpu()
    likeliest = frames.topk(min(beam_size + 1, frames.shape[-1]), dim=-1).indices
    return [
        _prefix_beam_search_one(frames[row, mask[row]].numpy(), likeliest[row, mask[row]].tolist(), blank, beam_size)
        for row in range(frames.shape[0])
    ]
