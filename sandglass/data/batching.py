"""Batches of token ids: padding with masks, and length-bucketed batches that fit a token budget."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import torch


@dataclass
class Batch:
    """A padded batch of sentence pairs; masks are true on real tokens.

    Shape:
        src: (B, S) long, src_mask: (B, S) bool, tgt: (B, T) long, tgt_mask: (B, T) bool,
        indices: (B,) long, the pairs' positions in the corpus
    """

    src: torch.Tensor
    src_mask: torch.Tensor
    tgt: torch.Tensor
    tgt_mask: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.src.to(device),
            self.src_mask.to(device),
            self.tgt.to(device),
            self.tgt_mask.to(device),
            self.indices.to(device),
        )


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences to the longest: ``(ids, mask)``.

    Shape:
        B sequences → ids: (B, L) long, mask: (B, L) bool, L the longest length
    """
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    width = int(lengths.max()) if len(sequences) else 0
    mask = torch.arange(width) < lengths.unsqueeze(1)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    # Row-major order of the true mask entries is the order of the concatenated sequences.
    ids[mask] = torch.tensor(list(chain.from_iterable(sequences)), dtype=torch.long)
    return ids, mask


def collate(
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]],
    pad_id: int,
    indices: Sequence[int] | None = None,
) -> Batch:
    """Pad source and target id sequences into a ``Batch`` (``indices`` default to ``0..B-1``)."""
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"collate needs as many targets as sources, got {len(src_ids)} and {len(tgt_ids)}")
    src, src_mask = pad_sequences(src_ids, pad_id)
    tgt, tgt_mask = pad_sequences(tgt_ids, pad_id)
    positions = torch.tensor(list(indices) if indices is not None else range(len(src_ids)), dtype=torch.long)
    return Batch(src, src_mask, tgt, tgt_mask, positions)


def token_budget_batches(
    src_lengths: Sequence[int],
    tgt_lengths: Sequence[int],
    max_tokens: int,
    *,
    max_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> list[list[int]]:
    """Group pair indices into batches of similar length whose padded size fits the budget.

    Each batch holds ``B ≤ max_size`` pairs with ``B · max(longest source, longest target) ≤ max_tokens``.
    Pairs are sorted by length (ties in an order shuffled by ``seed``), cut greedily into batches, and the
    batch order is shuffled by ``seed``: the same seed gives the same list, so a run can resume at a batch
    index. Pass ``seed + epoch`` for a new order each epoch. Every index appears exactly once.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer (>= 1), got {max_tokens}")
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be a positive integer (>= 1) or None, got {max_size}")
    if len(src_lengths) != len(tgt_lengths):
        raise ValueError(f"got {len(src_lengths)} source lengths but {len(tgt_lengths)} target lengths")
    lengths = [max(s, t) for s, t in zip(src_lengths, tgt_lengths, strict=True)]
    too_long = next((i for i, length in enumerate(lengths) if length > max_tokens), None)
    if too_long is not None:
        raise ValueError(
            f"pair {too_long} has {lengths[too_long]} tokens, more than max_tokens={max_tokens}; "
            "filter the data by length or raise max_tokens"
        )
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    order.sort(key=lambda i: (lengths[i], src_lengths[i], tgt_lengths[i]))  # stable: ties keep the shuffle

    batches, current, longest = [], [], 0
    for index in order:
        grown_longest = max(longest, lengths[index])
        full = max_size is not None and len(current) == max_size
        if current and (full or (len(current) + 1) * grown_longest > max_tokens):
            batches.append(current)
            current, grown_longest = [], lengths[index]
        current.append(index)
        longest = grown_longest
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def iterate_batches(
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]],
    batches: Sequence[Sequence[int]],
    pad_id: int,
    *,
    start: int = 0,
) -> Iterator[Batch]:
    """Collate ``batches`` (lists of pair indices) in order, beginning at batch number ``start``."""
    for indices in batches[start:]:
        yield collate([src_ids[i] for i in indices], [tgt_ids[i] for i in indices], pad_id, indices)
