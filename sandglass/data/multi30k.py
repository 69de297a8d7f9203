"""Multi30k (task 1, German↔English image captions): from a local folder, else from the Hugging Face hub.

Local folder, in the raw layout of the multi30k/dataset repository: ``train.{lang}``, ``val.{lang}`` and
``test_2016_flickr.{lang}``, each optionally gzipped, for ``de`` and ``en`` (``fr``, ``cs`` when their files
are there). The folder is ``data_dir`` if given, else the environment variable ``SANDGLASS_DATA``; either
may also name a parent folder with a ``multi30k/`` subfolder. With neither, the data come from the hub data
set ``bentrevett/multi30k`` (splits train, validation, test; columns ``de`` and ``en``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sandglass.data.corpus import DataError, DataSplits
from sandglass.data.folder import read_folder, text_languages
from sandglass.data.records import splits_from_dataset_dict

DATA_DIR_VARIABLE = "SANDGLASS_DATA"
HUB_NAME = "bentrevett/multi30k"
HUB_LANGUAGES = ("de", "en")


def multi30k_dir(data_dir: str | Path | None = None) -> Path | None:
    """The local Multi30k folder named by ``data_dir`` or ``$SANDGLASS_DATA``, or None when neither is set."""
    named = data_dir if data_dir is not None else os.environ.get(DATA_DIR_VARIABLE) or None
    if named is None:
        return None
    origin = "data_dir" if data_dir is not None else f"${DATA_DIR_VARIABLE}"
    folder = Path(named).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder} ({origin}): no such folder")
    for candidate in (folder, folder / "multi30k"):
        if text_languages(candidate, "train"):
            return candidate
    raise DataError(
        f"{folder} ({origin}): no Multi30k files; expected train.de.gz, train.en.gz, val.*, "
        "test_2016_flickr.* (gzipped or not), here or in a multi30k/ subfolder"
    )


def load_multi30k(
    *, src: str = "de", tgt: str = "en", data_dir: str | Path | None = None, encoding_errors: str = "strict"
) -> DataSplits:
    """Multi30k train (29,000 pairs), validation (1,014) and test 2016 Flickr (1,000), ``src`` → ``tgt``."""
    folder = multi30k_dir(data_dir)
    if folder is None:
        return load_multi30k_from_hub(src=src, tgt=tgt)
    splits = read_folder(folder, src, tgt, encoding_errors=encoding_errors)
    missing = [role for role in ("valid", "test") if role not in splits]
    if missing:
        raise DataError(
            f"{folder}: Multi30k folder without its {' and '.join(missing)} split; expected val.{src}, "
            f"val.{tgt}, test_2016_flickr.{src}, test_2016_flickr.{tgt} (gzipped or not)"
        )
    return DataSplits(splits["train"], splits["valid"], splits["test"])


def load_multi30k_from_hub(*, src: str = "de", tgt: str = "en") -> DataSplits:
    """Multi30k through ``datasets.load_dataset("bentrevett/multi30k")`` (downloaded once, then cached)."""
    import datasets  # imported here: it is slow to import and only the hub path needs it

    unknown = [language for language in (src, tgt) if language not in HUB_LANGUAGES]
    if unknown:
        raise DataError(
            f"Multi30k on the hub ({HUB_NAME}) has no {', '.join(repr(u) for u in unknown)} text; available "
            f"languages: {', '.join(HUB_LANGUAGES)} (for fr or cs, point data_dir/--data at a local folder)"
        )
    try:
        dataset_dict = datasets.load_dataset(HUB_NAME)
    except OSError as error:  # ConnectionError when offline; FileNotFoundError subclasses when not found
        raise DataError(
            f"cannot load Multi30k from the Hugging Face hub ({HUB_NAME}: {' '.join(str(error).split())}); "
            "without network, download the raw files (train/val/test_2016_flickr .de.gz and .en.gz) "
            f"into a folder and pass data_dir=DIR (--data DIR) or set {DATA_DIR_VARIABLE}=DIR"
        ) from None
    splits = splits_from_dataset_dict(dataset_dict, src, tgt, name=HUB_NAME)
    if "valid" not in splits or "test" not in splits:
        raise DataError(f"{HUB_NAME}: expected train, validation and test splits, found {', '.join(dataset_dict)}")
    return DataSplits(splits["train"], splits["valid"], splits["test"])
