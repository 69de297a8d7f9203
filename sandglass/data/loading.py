"""One entry point from a data set name or path to its train/validation/test splits."""

from __future__ import annotations

from pathlib import Path

from sandglass.data.corpus import DataError, DataSplits, ParallelCorpus
from sandglass.data.folder import read_data_file, read_folder
from sandglass.data.multi30k import load_multi30k
from sandglass.data.readers import file_format, read_parallel_text
from sandglass.data.synthetic import TASKS, load_synthetic

BUILT_IN = ("multi30k", *TASKS)
MAX_HELD_OUT = 1000


def load_splits(
    dataset: str = "multi30k",
    *,
    src: str = "de",
    tgt: str = "en",
    data_dir: str | Path | None = None,
    valid: str | None = None,
    encoding_errors: str = "strict",
    seed: int = 0,
    train_size: int = 10_000,
    eval_size: int = 500,
    symbols: int = 60,
    min_symbols: int = 1,
    max_symbols: int = 23,
) -> DataSplits:
    """Load a data set's splits in the ``src`` → ``tgt`` direction.

    ``dataset`` is one of:
      - ``"multi30k"``: from ``data_dir`` or ``$SANDGLASS_DATA`` in the raw layout, else from the hub;
      - ``"reverse"``, ``"copy"``, ``"sort"``: synthetic tasks of ``train_size`` training and ``eval_size``
        validation and test pairs of ``min_symbols`` to ``max_symbols`` symbols out of ``symbols``, drawn
        with ``seed`` (``src`` and ``tgt`` are ignored);
      - ``"SRC_FILE,TGT_FILE"``: two line-aligned text files (gzipped or not). Files whose suffixes are the
        ``src`` and ``tgt`` codes are matched by language (so ``a.de,a.en`` with ``src="en"`` reads English
        as the source); otherwise the first file is the source;
      - a ``.tsv``, ``.csv``, ``.jsonl``, ``.json`` or ``.parquet`` file (``read_table``, ``read_records``);
      - a folder of split files (``train.de``/``train.en``, ``train.tsv``, …; see ``sandglass.data.folder``)
        or a folder written by ``datasets``' ``save_to_disk``.

    ``valid`` (a file pair or a data file, as above) replaces the data set's validation split. A data set
    without one gets a validation split held out from its training pairs: ``eval_size`` pairs, at most a tenth
    of them (and at most 1,000), chosen with ``seed``. Raises ``DataError`` when the training set is empty.
    """
    if dataset == "multi30k":
        splits = load_multi30k(src=src, tgt=tgt, data_dir=data_dir, encoding_errors=encoding_errors)
        found = {"train": splits.train, "valid": splits.valid, "test": splits.test}
    elif dataset in TASKS:
        splits = load_synthetic(
            dataset,
            train_size=train_size,
            eval_size=eval_size,
            vocab_size=symbols,
            min_length=min_symbols,
            max_length=max_symbols,
            seed=seed,
        )
        found = {"train": splits.train, "valid": splits.valid, "test": splits.test}
    elif Path(dataset).is_dir():
        found = read_folder(dataset, src, tgt, encoding_errors=encoding_errors)
    else:
        found = {"train": read_source(dataset, src, tgt, encoding_errors=encoding_errors)}
    if valid is not None:
        found["valid"] = read_source(valid, src, tgt, encoding_errors=encoding_errors)
    train = found["train"]
    if len(train) == 0:
        raise DataError(f"the training set {train.name} is empty")
    if "valid" not in found:
        size = min(eval_size, MAX_HELD_OUT, len(train) // 10)
        if size < 1:
            raise DataError(
                f"{train.name}: {len(train)} training pairs are too few to hold out a validation set; "
                "give one with valid=... (--valid)"
            )
        train, found["valid"] = train.holdout(size, seed=seed)
    return DataSplits(train, found["valid"], found.get("test"))


def read_source(spec: str, src: str, tgt: str, *, encoding_errors: str = "strict") -> ParallelCorpus:
    """Pairs from ``"SRC_FILE,TGT_FILE"`` or from one table or record file (see ``load_splits``)."""
    if "," in spec and not Path(spec).exists():
        first, second = (part.strip() for part in spec.split(",", 1))
        if file_format(first) == f".{tgt}" and file_format(second) == f".{src}" and src != tgt:
            first, second = second, first
        return read_parallel_text(first, second, encoding_errors=encoding_errors)
    if not Path(spec).exists():
        raise DataError(f"unknown data set {spec!r}: not a built-in ({', '.join(BUILT_IN)}) and no such file or folder")
    return read_data_file(spec, src, tgt, encoding_errors=encoding_errors)
