import gzip

import pytest

from sandglass.data.corpus import DataError
from sandglass.data.loading import load_splits
from sandglass.data.multi30k import DATA_DIR_VARIABLE


def write_pair(folder, name, count, languages=("de", "en"), gz=False):
    for language in languages:
        data = "".join(f"{name} {language} {i}\n" for i in range(count)).encode()
        suffix = ".gz" if gz else ""
        (folder / f"{name}.{language}{suffix}").write_bytes(gzip.compress(data) if gz else data)


def test_synthetic_by_name():
    splits = load_splits("reverse", train_size=20, eval_size=4, seed=1)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (20, 4, 4)
    assert splits.train.target[0].split() == splits.train.source[0].split()[::-1]


def test_multi30k_by_name_reads_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    for name in ("train", "val", "test_2016_flickr"):
        write_pair(tmp_path, name, 3, gz=True)
    splits = load_splits("multi30k", src="en", tgt="de", data_dir=tmp_path)
    assert splits.test.pairs()[2] == ("test_2016_flickr en 2", "test_2016_flickr de 2")


def test_folder_of_split_files(tmp_path):
    write_pair(tmp_path, "train", 5)
    write_pair(tmp_path, "dev", 2)
    (tmp_path / "test.tsv").write_text("de\ten\nx\ty\n")
    splits = load_splits(str(tmp_path))
    assert (len(splits.train), len(splits.valid), splits.test.pairs()) == (5, 2, [("x", "y")])


def test_folder_without_training_data(tmp_path):
    write_pair(tmp_path, "dev", 2)
    with pytest.raises(DataError, match=r"no training data; expected train\.de and train\.en"):
        load_splits(str(tmp_path))


def test_file_pair_follows_language_suffixes(tmp_path):
    write_pair(tmp_path, "train", 20)
    spec = f"{tmp_path}/train.de,{tmp_path}/train.en"
    de_en = load_splits(spec, src="de", tgt="en")
    en_de = load_splits(spec, src="en", tgt="de")
    assert de_en.train.source[0].startswith("train de") and en_de.train.source[0].startswith("train en")
    assert en_de.valid == de_en.valid.swapped()


def test_missing_validation_is_held_out(tmp_path):
    write_pair(tmp_path, "train", 40)
    splits = load_splits(f"{tmp_path}/train.de,{tmp_path}/train.en", eval_size=100, seed=3)
    assert (len(splits.train), len(splits.valid), splits.test) == (36, 4, None)
    assert not set(splits.train.source) & set(splits.valid.source)


def test_explicit_validation_file(tmp_path):
    (tmp_path / "train.tsv").write_text("de\ten\na\tb\nc\td\n")
    (tmp_path / "valid.jsonl").write_text('{"de": "v", "en": "w"}\n')
    splits = load_splits(str(tmp_path / "train.tsv"), valid=str(tmp_path / "valid.jsonl"))
    assert splits.train.pairs() == [("a", "b"), ("c", "d")] and splits.valid.pairs() == [("v", "w")]


def test_too_few_pairs_to_hold_out(tmp_path):
    (tmp_path / "train.tsv").write_text("de\ten\na\tb\n")
    with pytest.raises(DataError, match=r"1 training pairs are too few .*--valid"):
        load_splits(str(tmp_path / "train.tsv"))


def test_empty_training_set(tmp_path):
    (tmp_path / "train.de").write_text("")
    (tmp_path / "train.en").write_text("")
    with pytest.raises(DataError, match=r"the training set .*train\.de \+ .*train\.en is empty"):
        load_splits(str(tmp_path))


def test_unknown_data_set_lists_the_built_ins():
    with pytest.raises(DataError, match=r"unknown data set 'wmt14': not a built-in \(multi30k, reverse, copy, sort\)"):
        load_splits("wmt14")
