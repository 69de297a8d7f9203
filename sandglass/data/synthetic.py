"""Synthetic sequence tasks that need no files: ``reverse``, ``copy``, ``sort``.

``reverse`` is the original SandGlass sanity check: reverse random sequences of up to 23 symbols drawn from a
60-symbol vocabulary. Symbols are written as whitespace-separated words ``s00`` … ``s59``, so a word-level
tokenizer gives one id per symbol. Every split is fixed by its seed.
"""

from __future__ import annotations

import random

from sandglass.data.corpus import DataError, DataSplits, ParallelCorpus

TASKS = ("reverse", "copy", "sort")


def symbol_names(vocab_size: int) -> list[str]:
    """The vocabulary: ``s0`` … ``s9`` for 10 symbols, ``s00`` … ``s59`` for 60 (zero-padded: they sort)."""
    width = len(str(vocab_size - 1))
    return [f"s{index:0{width}d}" for index in range(vocab_size)]


def _transform(task: str, sequence: list[int]) -> list[int]:
    if task == "reverse":
        return sequence[::-1]
    if task == "sort":
        return sorted(sequence)
    return list(sequence)


def synthetic_corpus(
    task: str,
    size: int,
    *,
    vocab_size: int = 60,
    min_length: int = 1,
    max_length: int = 23,
    seed: int | str = 0,
) -> ParallelCorpus:
    """``size`` random symbol sequences (lengths uniform in ``min_length..max_length``) and their outputs."""
    if task not in TASKS:
        raise DataError(f"unknown synthetic task {task!r}; available tasks: {', '.join(TASKS)}")
    if vocab_size < 1 or size < 0 or not 1 <= min_length <= max_length:
        raise DataError(
            f"synthetic task needs vocab_size >= 1, size >= 0 and 1 <= min_length <= max_length, got "
            f"vocab_size={vocab_size}, size={size}, min_length={min_length}, max_length={max_length}"
        )
    names = symbol_names(vocab_size)
    rng = random.Random(str(seed))  # a string seed is hashed the same way on every run and platform
    source, target = [], []
    for _ in range(size):
        sequence = [rng.randrange(vocab_size) for _ in range(rng.randint(min_length, max_length))]
        source.append(" ".join(names[i] for i in sequence))
        target.append(" ".join(names[i] for i in _transform(task, sequence)))
    return ParallelCorpus(source, target, name=f"synthetic {task}")


def load_synthetic(
    task: str,
    *,
    train_size: int = 10_000,
    eval_size: int = 500,
    vocab_size: int = 60,
    min_length: int = 1,
    max_length: int = 23,
    seed: int = 0,
) -> DataSplits:
    """Train, validation and test splits of a synthetic task, each drawn with its own seed."""
    options = {"vocab_size": vocab_size, "min_length": min_length, "max_length": max_length}
    train, valid, test = (
        synthetic_corpus(task, count, seed=f"{split}:{seed}", **options)
        for split, count in (("train", train_size), ("valid", eval_size), ("test", eval_size))
    )
    return DataSplits(train, valid, test)
