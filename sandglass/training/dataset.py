"""From a run's data settings to token ids: load the splits, get the joint tokenizer, encode, filter by length."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandglass.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OriginalConfig,
    RunConfig,
    SandGlassConfig,
    TransformerConfig,
)
from sandglass.data.corpus import DataError, DataSplits, ParallelCorpus
from sandglass.data.loading import BUILT_IN, load_splits
from sandglass.data.synthetic import TASKS
from sandglass.tokenizer import Tokenizer, train_or_load


@dataclass
class EncodedSplit:
    """Token ids of the pairs kept after length filtering, with their target texts (the BLEU references)."""

    source_ids: list[list[int]]
    target_ids: list[list[int]]
    references: list[str]

    def __len__(self) -> int:
        return len(self.source_ids)


def load_run_splits(data: DataConfig) -> DataSplits:
    """The data set's splits, with target = source for the ``reconstruct`` task."""
    splits = load_splits(
        data.dataset,
        src=data.src,
        tgt=data.tgt,
        data_dir=data.data_dir,
        encoding_errors=data.encoding_errors,
        train_size=data.train_size,
        eval_size=data.eval_size,
        symbols=data.symbols,
        min_symbols=data.min_symbols,
        max_symbols=data.max_symbols,
    )
    return for_task(splits, data.task)


def data_paths(data: DataConfig) -> list[Path]:
    """The files and folders a run's data settings name (none for a built-in data set without ``data_dir``)."""
    paths = [Path(data.data_dir)] if data.data_dir is not None else []
    if data.dataset in BUILT_IN:
        return paths
    if "," in data.dataset and not Path(data.dataset).exists():  # a SRC_FILE,TGT_FILE pair (see read_source)
        return paths + [Path(part.strip()) for part in data.dataset.split(",", 1)]
    return paths + [Path(data.dataset)]


def relocated(data: DataConfig, place: Path) -> DataConfig:
    """``data`` found at ``place``: the folder of a built-in data set, or the file or folder a path data set names."""
    field = "data_dir" if data.dataset in BUILT_IN else "dataset"
    return dataclasses.replace(data, **{field: str(place)})


def paths_outside(paths: Sequence[Path], root: Path) -> list[Path]:
    """The ``paths`` (relative ones taken from ``root``) that lead outside ``root``, symbolic links followed."""
    root = root.resolve()
    return [path for path in paths if not (root / path.expanduser()).resolve().is_relative_to(root)]


def for_task(splits: DataSplits, task: str) -> DataSplits:
    """``translate`` keeps the pairs; ``reconstruct`` makes every target its own source (an autoencoder)."""
    if task == "translate":
        return splits
    if task != "reconstruct":
        raise DataError(f"unknown task {task!r}; choose translate or reconstruct")

    def copy(corpus: ParallelCorpus) -> ParallelCorpus:
        return ParallelCorpus(list(corpus.source), list(corpus.source), corpus.name)

    return DataSplits(copy(splits.train), copy(splits.valid), copy(splits.test) if splits.test else None)


def tokenizer_for(splits: DataSplits, data: DataConfig, cache_dir: Path) -> Tokenizer:
    """The joint tokenizer of the training pairs, trained once and cached in ``cache_dir``.

    The synthetic tasks use a word model: one id per symbol.
    """
    model_type = "word" if data.dataset in TASKS else "unigram"
    texts = list(splits.train.source) + list(splits.train.target)
    return train_or_load(texts, cache_dir, vocab_size=data.vocab_size, model_type=model_type)


def batching_lengths(split: EncodedSplit, model: ModelConfig) -> tuple[list[int], list[int]]:
    """The source and target lengths that batches are cut by.

    The real lengths bucket similar sentences together. The fixed-length original pads every pair to its
    ``sequence_length``, so every pair gets that length and batches become random samples: batches of
    same-length sentences would let its batch normalization read each sentence's length from the batch
    statistics during training, which it cannot do on mixed batches or in evaluation.
    """
    if isinstance(model, OriginalConfig):
        fixed = [model.sequence_length] * len(split)
        return fixed, fixed
    return [len(ids) for ids in split.source_ids], [len(ids) for ids in split.target_ids]


def token_limit(config: RunConfig) -> int:
    """The most tokens a source or target may have: the data limit, and what the model can hold."""
    return min(config.data.max_length, model_length_limit(config.model))


def model_length_limit(model: ModelConfig) -> int:
    if isinstance(model, OriginalConfig):
        return model.sequence_length
    if isinstance(model, TransformerConfig):
        return model.max_length - 1  # the decoder input gets a bos token in front
    if isinstance(model, SandGlassConfig):
        return model.max_length
    raise DataError(f"no length limit known for {type(model).__name__}")


def encode_split(corpus: ParallelCorpus, tokenizer: Tokenizer, max_length: int) -> EncodedSplit:
    """Encode both sides and keep the pairs whose sides have 1 to ``max_length`` tokens.

    Raises DataError when no pair is left.
    """
    source_ids, target_ids = tokenizer.encode(corpus.source), tokenizer.encode(corpus.target)
    kept = [
        i
        for i, (source, target) in enumerate(zip(source_ids, target_ids, strict=True))
        if 1 <= len(source) <= max_length and 1 <= len(target) <= max_length
    ]
    if not kept:
        longest = max((len(ids) for ids in source_ids + target_ids), default=0)
        raise DataError(
            f"{corpus.name}: no sentence pair has 1 to {max_length} tokens on both sides (out of {len(corpus)} "
            f"pairs, the longest has {longest}); raise the maximum length"
        )
    return EncodedSplit(_pick(source_ids, kept), _pick(target_ids, kept), _pick(corpus.target, kept))


def require_budget(split: EncodedSplit, max_tokens: int) -> None:
    """Every pair must fit in a batch of ``max_tokens`` tokens on its own; raise ConfigError otherwise."""
    longest = max(max(map(len, split.source_ids)), max(map(len, split.target_ids)))
    if longest > max_tokens:
        raise ConfigError(
            f"train.max_tokens={max_tokens} is less than the longest pair ({longest} tokens); raise max_tokens "
            "or lower data.max_length"
        )


def _pick(items: Sequence, indices: list[int]) -> list:
    return [items[i] for i in indices]
