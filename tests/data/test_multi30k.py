import gzip
from pathlib import Path

import datasets
import pytest

from sandglass.data.corpus import DataError
from sandglass.data.multi30k import DATA_DIR_VARIABLE, load_multi30k, load_multi30k_from_hub, multi30k_dir

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"
SPLITS = {"train": 6, "val": 2, "test_2016_flickr": 3}


def write_raw_layout(folder, languages=("de", "en")):
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in SPLITS.items():
        for language in languages:
            text = "".join(f"{split} {language} {i}\n" for i in range(count))
            (folder / f"{split}.{language}.gz").write_bytes(gzip.compress(text.encode()))
    (folder / "test_2017_flickr.de").write_text("decoy\n")
    return folder


@pytest.fixture(autouse=True)
def no_data_variable(monkeypatch):
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)


@pytest.fixture
def hub_must_not_be_called(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the hub was called")

    monkeypatch.setattr(datasets, "load_dataset", fail)


def test_local_raw_layout(tmp_path, hub_must_not_be_called):
    splits = load_multi30k(data_dir=write_raw_layout(tmp_path / "m"))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (6, 2, 3)
    assert splits.train.pairs()[1] == ("train de 1", "train en 1")
    assert splits.test.source[0] == "test_2016_flickr de 0"


def test_direction_and_extra_languages(tmp_path, hub_must_not_be_called):
    splits = load_multi30k(src="fr", tgt="de", data_dir=write_raw_layout(tmp_path, ("de", "en", "fr")))
    assert splits.valid.pairs()[0] == ("val fr 0", "val de 0")


def test_environment_variable_and_parent_folder(tmp_path, monkeypatch, hub_must_not_be_called):
    write_raw_layout(tmp_path / "multi30k")
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path))
    assert multi30k_dir() == tmp_path / "multi30k"
    assert len(load_multi30k().train) == 6


def test_no_folder_named_means_the_hub():
    assert multi30k_dir(None) is None


def test_folder_without_multi30k_files(tmp_path, hub_must_not_be_called):
    with pytest.raises(DataError, match=r"\(data_dir\): no Multi30k files; expected train\.de\.gz"):
        load_multi30k(data_dir=tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        load_multi30k(data_dir=tmp_path / "absent")


def test_unknown_language_in_folder(tmp_path, hub_must_not_be_called):
    with pytest.raises(DataError, match=r"no train\.cs file .*available languages: de, en"):
        load_multi30k(src="cs", tgt="en", data_dir=write_raw_layout(tmp_path))


def test_folder_without_validation(tmp_path):
    folder = write_raw_layout(tmp_path)
    for path in folder.glob("val.*"):
        path.unlink()
    with pytest.raises(DataError, match="without its valid split; expected val.de"):
        load_multi30k(data_dir=folder)


def test_offline_without_local_copy_says_how_to_point_at_a_folder(monkeypatch):
    def offline(name, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"Couldn't reach .*--data DIR.*SANDGLASS_DATA=DIR") as caught:
        load_multi30k()
    assert "\n" not in str(caught.value)


def test_unknown_language_on_the_hub(hub_must_not_be_called):
    with pytest.raises(DataError, match="no 'fr' text; available languages: de, en"):
        load_multi30k_from_hub(src="fr", tgt="en")


def hub_like(columns):
    """The layout of bentrevett/multi30k: splits train/validation/test, one column per language."""
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(columns(split)) for split in ("train", "validation", "test")}
    )


@pytest.mark.parametrize(
    "columns",
    [
        lambda split: {"en": [f"{split} en"], "de": [f"{split} de"]},
        lambda split: {"translation": [{"de": f"{split} de", "en": f"{split} en"}]},
    ],
    ids=["language-columns", "translation-column"],
)
def test_hub_records_become_splits(monkeypatch, columns):
    monkeypatch.setattr(datasets, "load_dataset", lambda name: hub_like(columns))
    splits = load_multi30k(src="en", tgt="de")
    assert splits.train.pairs() == [("train en", "train de")]
    assert splits.valid.pairs() == [("validation en", "validation de")]
    assert splits.test.pairs() == [("test en", "test de")]


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"the real Multi30k folder {REAL_DATA} is absent")
def test_real_multi30k():
    de_en = load_multi30k(src="de", tgt="en", data_dir=REAL_DATA)
    en_de = load_multi30k(src="en", tgt="de", data_dir=REAL_DATA)
    assert (len(de_en.train), len(de_en.valid), len(de_en.test)) == (29_000, 1_014, 1_000)
    assert en_de == de_en.swapped()
    assert de_en.train.source[0].startswith("Zwei junge weiße Männer")
    assert de_en.train.target[0].startswith("Two young, White males")
