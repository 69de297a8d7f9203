"""Data sets stored in a folder: one set of files per split, or a ``save_to_disk`` folder.

A split named ``train`` is found as the text pair ``train.{src}`` + ``train.{tgt}`` (each optionally
``.gz``: the Multi30k raw layout), else as one of ``train.tsv``, ``.csv``, ``.jsonl``, ``.json``, ``.parquet``
(optionally ``.gz`` except parquet). Validation and test splits go by the names in ``SPLIT_NAMES``
(``val``, ``test_2016_flickr``, …).
"""

from __future__ import annotations

from pathlib import Path

from sandglass.data.corpus import DataError, ParallelCorpus
from sandglass.data.readers import TABLE_FORMATS, file_format, read_parallel_text, read_table
from sandglass.data.records import (
    RECORD_FORMATS,
    SPLIT_NAMES,
    is_saved_dataset,
    read_records,
    read_saved_dataset,
)

DATA_FILE_FORMATS = TABLE_FORMATS + RECORD_FORMATS


def read_data_file(path: str | Path, src: str, tgt: str, *, encoding_errors: str = "strict") -> ParallelCorpus:
    """Sentence pairs from one table or record file, chosen by its suffix."""
    fmt = file_format(path)
    if fmt in TABLE_FORMATS:
        return read_table(path, src, tgt, encoding_errors=encoding_errors)
    if fmt in RECORD_FORMATS:
        return read_records(path, src, tgt, encoding_errors=encoding_errors)
    raise DataError(
        f"{path}: unknown data file format {fmt or '(no suffix)'}; use one of {', '.join(DATA_FILE_FORMATS)}"
    )


def read_folder(
    folder: str | Path, src: str, tgt: str, *, encoding_errors: str = "strict"
) -> dict[str, ParallelCorpus]:
    """The splits found in ``folder`` by role: ``train`` always, ``valid`` and ``test`` when present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    if is_saved_dataset(folder):
        return read_saved_dataset(folder, src, tgt)
    splits = {}
    for role, names in SPLIT_NAMES.items():
        for name in names:
            corpus = _read_split(folder, name, src, tgt, encoding_errors)
            if corpus is not None:
                splits[role] = corpus
                break
    if "train" not in splits:
        raise DataError(
            f"{folder}: no training data; expected train.{src} and train.{tgt} (optionally .gz), "
            f"or train{'/'.join(DATA_FILE_FORMATS)}, or a folder written by save_to_disk"
        )
    return splits


def _read_split(folder: Path, name: str, src: str, tgt: str, encoding_errors: str) -> ParallelCorpus | None:
    src_path, tgt_path = _text_file(folder, name, src), _text_file(folder, name, tgt)
    if src_path is not None and tgt_path is not None:
        return read_parallel_text(src_path, tgt_path, encoding_errors=encoding_errors)
    for fmt in DATA_FILE_FORMATS:
        for path in (folder / f"{name}{fmt}", folder / f"{name}{fmt}.gz"):
            if path.is_file():
                return read_data_file(path, src, tgt, encoding_errors=encoding_errors)
    languages = text_languages(folder, name)
    if languages:
        missing = src if src_path is None else tgt
        raise DataError(
            f"{folder}: no {name}.{missing} file (or {name}.{missing}.gz); available languages: "
            f"{', '.join(languages)} (choose with --src/--tgt)"
        )
    return None


def _text_file(folder: Path, name: str, language: str) -> Path | None:
    for path in (folder / f"{name}.{language}", folder / f"{name}.{language}.gz"):
        if path.is_file():
            return path
    return None


def text_languages(folder: str | Path, name: str) -> list[str]:
    """Language codes of the one-sentence-per-line files ``{name}.{language}[.gz]`` in ``folder``."""
    languages = set()
    for path in Path(folder).glob(f"{name}.*"):
        suffix = path.name[len(name) + 1 :]
        suffix = suffix[: -len(".gz")] if suffix.endswith(".gz") else suffix
        if suffix and "." not in suffix and f".{suffix}" not in DATA_FILE_FORMATS:
            languages.add(suffix)
    return sorted(languages)
