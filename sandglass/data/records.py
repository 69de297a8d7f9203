"""Record data through ``datasets``: JSON lines, JSON, parquet, ``save_to_disk`` folders, hub data sets.

A record holds a pair either in a ``translation`` column of ``{language: text}`` dicts (the hub's convention)
or in plain columns named by language code (``{"de": ..., "en": ...}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandglass.data.corpus import DataError, ParallelCorpus
from sandglass.data.readers import file_format, read_text, split_lines

if TYPE_CHECKING:
    import datasets

RECORD_FORMATS = (".jsonl", ".json", ".parquet")
# Split names of a DatasetDict (or files in a folder), by role; the first match wins.
SPLIT_NAMES = {
    "train": ("train",),
    "valid": ("valid", "validation", "val", "dev"),
    "test": ("test", "test_2016_flickr"),
}


def corpus_from_dataset(dataset: datasets.Dataset, src: str, tgt: str, name: str) -> ParallelCorpus:
    """The ``src`` → ``tgt`` pairs of a ``datasets.Dataset`` (``translation`` column, or one per language)."""
    if len(dataset) == 0:
        return ParallelCorpus([], [], name=name)
    if "translation" in dataset.column_names:
        rows = list(dataset["translation"])
        _require_languages(rows[0].keys(), src, tgt, name)
        source, target = [row[src] for row in rows], [row[tgt] for row in rows]
    else:
        _require_languages(dataset.column_names, src, tgt, name)
        source, target = list(dataset[src]), list(dataset[tgt])
    for side, texts in ((src, source), (tgt, target)):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"{name}: record {index + 1} has no {side!r} text (found {text!r})")
    return ParallelCorpus(source, target, name=name)


def _require_languages(available: Iterable[str], src: str, tgt: str, name: str) -> None:
    available = [str(language) for language in available]
    missing = [language for language in (src, tgt) if language not in available]
    if missing:
        raise DataError(
            f"{name}: no {', '.join(repr(m) for m in missing)} text; available languages: "
            f"{', '.join(sorted(available))} (choose with --src/--tgt)"
        )


def read_records(path: str | Path, src: str, tgt: str, *, encoding_errors: str = "strict") -> ParallelCorpus:
    """Pairs from a ``.jsonl``, ``.json`` (an array of records or JSON lines) or ``.parquet`` file."""
    import datasets  # imported here: it is slow to import and only these readers need it

    fmt = file_format(path)
    if fmt not in RECORD_FORMATS:
        raise DataError(f"{path}: expected a .jsonl, .json or .parquet file, got {fmt or 'no suffix'}")
    if fmt == ".parquet":
        dataset = datasets.Dataset(_read_parquet(path))
    else:
        records = _read_json_records(path, encoding_errors)
        try:
            dataset = datasets.Dataset.from_list(records)
        except (TypeError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"{path}: records do not share one structure ({error})") from None
    return corpus_from_dataset(dataset, src, tgt, name=str(path))


def _read_parquet(path: str | Path) -> Any:
    import pyarrow
    import pyarrow.parquet

    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        return pyarrow.parquet.read_table(path)
    except (OSError, pyarrow.ArrowException) as error:
        raise DataError(f"cannot read {path}: not a readable parquet file ({error})") from None


def _read_json_records(path: str | Path, encoding_errors: str) -> list[dict[str, Any]]:
    text = read_text(path, encoding_errors)
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
        numbered = list(enumerate(records, 1))
    else:
        numbered = []
        for line_number, line in enumerate(split_lines(text), 1):
            if not line.strip():
                continue
            try:
                numbered.append((line_number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}, line {line_number}: not valid JSON ({error.msg})") from None
    for position, record in numbered:
        if not isinstance(record, dict):
            raise DataError(f"{path}, record {position}: expected a JSON object, found {type(record).__name__}")
    return [record for _, record in numbered]


def is_saved_dataset(folder: str | Path) -> bool:
    """Whether ``folder`` was written by ``datasets``' ``save_to_disk``."""
    folder = Path(folder)
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def read_saved_dataset(folder: str | Path, src: str, tgt: str) -> dict[str, ParallelCorpus]:
    """The splits of a ``save_to_disk`` folder by role (``train``, ``valid``, ``test``; those present).

    A single saved ``Dataset`` (not a ``DatasetDict``) is the training split.
    """
    import datasets

    try:
        saved = datasets.load_from_disk(str(folder))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the saved data set {folder}: {error}") from None
    if isinstance(saved, datasets.Dataset):
        return {"train": corpus_from_dataset(saved, src, tgt, name=str(folder))}
    return splits_from_dataset_dict(saved, src, tgt, name=str(folder))


def splits_from_dataset_dict(
    dataset_dict: datasets.DatasetDict, src: str, tgt: str, name: str
) -> dict[str, ParallelCorpus]:
    """The splits of a ``DatasetDict`` by role, its split names matched with ``SPLIT_NAMES``."""
    splits = {}
    for role, names in SPLIT_NAMES.items():
        found = next((split for split in names if split in dataset_dict), None)
        if found is not None:
            splits[role] = corpus_from_dataset(dataset_dict[found], src, tgt, name=f"{name} [{found}]")
    if "train" not in splits:
        raise DataError(f"{name}: no 'train' split; found {', '.join(dataset_dict)}")
    return splits
