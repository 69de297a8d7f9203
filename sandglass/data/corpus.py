"""Parallel corpora: aligned source/target sentences, their splits, and the data error type."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class DataError(ValueError):
    """A data set that cannot be read or used. The message is one line: what is wrong and what to do."""


def word_counts(texts: Sequence[str]) -> list[int]:
    """Number of whitespace-separated words in each text."""
    return [len(text.split()) for text in texts]


@dataclass(frozen=True)
class ParallelCorpus:
    """Line-aligned sentence pairs: ``source[i]`` translates to ``target[i]``.

    ``name`` says where the pairs came from (for error messages); it takes no part in equality.
    """

    source: list[str]
    target: list[str]
    name: str = field(default="corpus", compare=False)

    def __post_init__(self) -> None:
        if len(self.source) != len(self.target):
            raise DataError(
                f"{self.name}: {len(self.source)} source sentences but {len(self.target)} target sentences; "
                "the two sides must be line-aligned"
            )

    def __len__(self) -> int:
        return len(self.source)

    def pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.source, self.target, strict=True))

    def select(self, indices: Sequence[int], name: str | None = None) -> ParallelCorpus:
        """The pairs at ``indices``, in that order."""
        return ParallelCorpus([self.source[i] for i in indices], [self.target[i] for i in indices], name or self.name)

    def swapped(self) -> ParallelCorpus:
        """The same pairs in the other direction (target → source)."""
        return ParallelCorpus(self.target, self.source, self.name)

    def filter_by_length(
        self,
        *,
        max_length: int,
        min_length: int = 1,
        count: Callable[[Sequence[str]], list[int]] = word_counts,
    ) -> ParallelCorpus:
        """Keep the pairs whose source and target both have ``min_length ≤ length ≤ max_length``.

        ``count`` maps a list of texts to their lengths: whitespace words by default, or tokens with
        ``count=lambda texts: [len(ids) for ids in tokenizer.encode(texts)]``.
        Raises ``DataError`` when no pair is left.
        """
        if min_length > max_length:
            raise DataError(f"min_length ({min_length}) must not exceed max_length ({max_length})")
        source_lengths, target_lengths = count(self.source), count(self.target)
        kept = [
            i
            for i, (s, t) in enumerate(zip(source_lengths, target_lengths, strict=True))
            if min_length <= s <= max_length and min_length <= t <= max_length
        ]
        if not kept:
            longest = max(max(source_lengths, default=0), max(target_lengths, default=0))
            raise DataError(
                f"{self.name}: no sentence pair is left after length filtering to {min_length}..{max_length} "
                f"(out of {len(self)} pairs, the longest has {longest}); raise the maximum length"
            )
        return self.select(kept)

    def holdout(self, size: int, *, seed: int = 0) -> tuple[ParallelCorpus, ParallelCorpus]:
        """Split off ``size`` pairs chosen at random (fixed by ``seed``): returns ``(rest, held_out)``."""
        if not 0 < size < len(self):
            raise DataError(f"{self.name}: cannot hold out {size} of {len(self)} pairs")
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        held, rest = sorted(order[:size]), sorted(order[size:])
        return self.select(rest), self.select(held, f"{self.name} (held out)")


@dataclass(frozen=True)
class DataSplits:
    """Training, validation and (when the data set has one) test pairs."""

    train: ParallelCorpus
    valid: ParallelCorpus
    test: ParallelCorpus | None = None

    def swapped(self) -> DataSplits:
        """The same splits in the other direction."""
        test = self.test.swapped() if self.test is not None else None
        return DataSplits(self.train.swapped(), self.valid.swapped(), test)
