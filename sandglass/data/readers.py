"""Readers for plain-text parallel data: one sentence per line (gzipped or not), and TSV/CSV tables.

Every failure raises ``DataError`` with one line naming the file (and the line when there is one).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from pathlib import Path

from sandglass.data.corpus import DataError, ParallelCorpus

ENCODING_ERRORS = ("strict", "replace", "ignore")
TABLE_FORMATS = (".tsv", ".csv")

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
# A header cell that names a language: "de", "en", "pt_br", "zh-Hans". Sentences rarely look like this.
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?")


def file_format(path: str | Path) -> str:
    """The format suffix of ``path`` with any ``.gz`` removed: ``train.tsv.gz`` → ``.tsv``."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    return Path(name).suffix


def read_bytes(path: str | Path) -> bytes:
    """The bytes of ``path``, decompressed when it is gzipped (recognized by content, not by name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw.startswith(_GZIP_MAGIC) else raw
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise DataError(f"cannot read {path}: {reason}") from None


def read_text(path: str | Path, encoding_errors: str = "strict") -> str:
    """The UTF-8 text of ``path`` (gzipped or not, a leading byte-order mark dropped).

    ``encoding_errors="replace"`` puts U+FFFD in place of bytes that are not UTF-8 instead of failing.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise DataError(f"encoding_errors must be one of {', '.join(ENCODING_ERRORS)}, got {encoding_errors!r}")
    raw = read_bytes(path)
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    try:
        return raw.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        bad_bytes = raw[error.start : error.end]
        raise DataError(
            f"{path}, line {line}: bytes {bad_bytes!r} are not UTF-8; convert the file to UTF-8 "
            "or pass encoding_errors='replace' (--encoding-errors replace)"
        ) from None


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` without their end-of-line characters.

    Only ``\\n`` (and a ``\\r`` before it) ends a line: ``str.splitlines`` would also split on characters
    such as U+2028 inside a sentence and break the alignment of parallel files.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: str | Path, encoding_errors: str = "strict") -> list[str]:
    """One string per line of a UTF-8 text file, gzipped or not."""
    return split_lines(read_text(path, encoding_errors))


def read_parallel_text(
    src_path: str | Path, tgt_path: str | Path, *, encoding_errors: str = "strict"
) -> ParallelCorpus:
    """Pairs from two line-aligned files: line i of ``tgt_path`` translates line i of ``src_path``."""
    source = read_lines(src_path, encoding_errors)
    target = read_lines(tgt_path, encoding_errors)
    if len(source) != len(target):
        raise DataError(
            f"parallel files differ in length: {src_path} has {len(source)} lines but {tgt_path} has "
            f"{len(target)}; they must be line-aligned"
        )
    return ParallelCorpus(source, target, name=f"{src_path} + {tgt_path}")


def read_table(path: str | Path, src: str, tgt: str, *, encoding_errors: str = "strict") -> ParallelCorpus:
    """Sentence pairs from a ``.tsv`` or ``.csv`` file (gzipped or not).

    The first row either names the columns with language codes (``de<TAB>en``, more columns allowed), or the
    table has exactly two columns and no header: then the first column is the source, the second the target.
    TSV fields are split on tabs only (quotes are text); CSV follows the usual quoting rules.
    """
    fmt = file_format(path)
    if fmt not in TABLE_FORMATS:
        raise DataError(f"{path}: expected a .tsv or .csv file, got {fmt or 'no suffix'}")
    text = read_text(path, encoding_errors)
    rows = _tsv_rows(text) if fmt == ".tsv" else _csv_rows(text, path)
    if not rows:
        return ParallelCorpus([], [], name=str(path))
    src_column, tgt_column, width, body = _locate_columns(rows, src, tgt, path)
    for line, fields in body:
        if len(fields) != width:
            raise DataError(f"{path}, line {line}: expected {width} fields, found {len(fields)}")
    return ParallelCorpus(
        [fields[src_column] for _, fields in body], [fields[tgt_column] for _, fields in body], name=str(path)
    )


def _tsv_rows(text: str) -> list[tuple[int, list[str]]]:
    """``(1-based line number, fields)`` for each non-blank line."""
    return [(number, line.split("\t")) for number, line in enumerate(split_lines(text), 1) if line.strip()]


def _csv_rows(text: str, path: str | Path) -> list[tuple[int, list[str]]]:
    """``(1-based first line number, fields)`` for each non-blank record (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, next_line = [], 1
    try:
        for fields in reader:
            if any(field.strip() for field in fields):
                rows.append((next_line, fields))
            next_line = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({error})") from None
    return rows


def _locate_columns(
    rows: list[tuple[int, list[str]]], src: str, tgt: str, path: str | Path
) -> tuple[int, int, int, list[tuple[int, list[str]]]]:
    """Find the source and target columns: ``(src_column, tgt_column, number_of_fields, data_rows)``."""
    _, first = rows[0]
    names = [cell.strip() for cell in first]
    is_header = (src in names and tgt in names) or all(_LANGUAGE_CODE.fullmatch(name) for name in names)
    if is_header:
        missing = [language for language in (src, tgt) if language not in names]
        if missing:
            raise DataError(
                f"{path}: no {', '.join(repr(m) for m in missing)} column; available languages: "
                f"{', '.join(names)} (choose with --src/--tgt)"
            )
        return names.index(src), names.index(tgt), len(names), rows[1:]
    if len(first) == 2:
        return 0, 1, 2, rows
    raise DataError(
        f"{path}: the first row has {len(first)} fields but no header naming the languages; "
        f"add a header row that names the columns with language codes such as {src} and {tgt}"
    )
