import csv
import gzip
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandglass.data.corpus import DataError, ParallelCorpus
from sandglass.data.folder import read_data_file, read_folder
from sandglass.data.readers import read_lines, read_parallel_text, read_table, read_text

GERMAN = ["Ein Hund läuft, schnell.", 'Sie sagt "Hallo".', "Zwei\u2028Zeilen? Nein.", "Ende"]
ENGLISH = ["A dog runs, fast.", 'She says "hello".', "Two\u2028lines? No.", "End"]
EXPECTED = ParallelCorpus(GERMAN, ENGLISH)


def write_text_pair(folder, gz=False):
    suffix = ".gz" if gz else ""
    for language, lines in (("de", GERMAN), ("en", ENGLISH)):
        data = "".join(line + "\n" for line in lines).encode()
        (folder / f"train.{language}{suffix}").write_bytes(gzip.compress(data) if gz else data)
    return f"{folder}/train.de{suffix},{folder}/train.en{suffix}"


def write_tsv(folder, gz=False):
    text = "en\tde\n" + "".join(f"{e}\t{g}\n" for g, e in zip(GERMAN, ENGLISH, strict=True))
    path = folder / ("train.tsv.gz" if gz else "train.tsv")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return str(path)


def write_csv(folder):
    path = folder / "train.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "de", "en"])
        writer.writerows([i, g, e] for i, (g, e) in enumerate(zip(GERMAN, ENGLISH, strict=True)))
    return str(path)


def translation_records():
    return [{"translation": {"de": g, "en": e}} for g, e in zip(GERMAN, ENGLISH, strict=True)]


def write_jsonl(folder):
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in translation_records()))
    return str(path)


def write_json_array_of_columns(folder):
    path = folder / "train.json"
    path.write_text(json.dumps([{"de": g, "en": e} for g, e in zip(GERMAN, ENGLISH, strict=True)]))
    return str(path)


def write_parquet(folder):
    path = folder / "train.parquet"
    pq.write_table(pa.Table.from_pylist(translation_records()), path)
    return str(path)


def write_parquet_columns(folder):
    path = folder / "train.parquet"
    pq.write_table(pa.table({"de": GERMAN, "en": ENGLISH}), path)
    return str(path)


def write_saved_dataset(folder):
    train = datasets.Dataset.from_list(translation_records())
    datasets.DatasetDict({"train": train, "validation": train.select([0])}).save_to_disk(folder / "saved")
    return str(folder / "saved")


def read_any(spec):
    if "," in spec:
        first, second = spec.split(",")
        return read_parallel_text(first, second)
    if spec.endswith("saved"):
        return read_folder(spec, "de", "en")["train"]
    return read_data_file(spec, "de", "en")


WRITERS = {
    "text": write_text_pair,
    "text.gz": lambda folder: write_text_pair(folder, gz=True),
    "tsv": write_tsv,
    "tsv.gz": lambda folder: write_tsv(folder, gz=True),
    "csv": write_csv,
    "jsonl": write_jsonl,
    "json": write_json_array_of_columns,
    "parquet": write_parquet,
    "parquet-columns": write_parquet_columns,
    "save_to_disk": write_saved_dataset,
}


@pytest.mark.parametrize("fmt", WRITERS)
def test_every_format_gives_the_same_pairs(tmp_path, fmt):
    corpus = read_any(WRITERS[fmt](tmp_path))
    assert corpus.source == GERMAN and corpus.target == ENGLISH


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "parquet", "save_to_disk"])
def test_records_and_tables_follow_the_requested_direction(tmp_path, fmt):
    spec = WRITERS[fmt](tmp_path)
    corpus = read_folder(spec, "en", "de")["train"] if fmt == "save_to_disk" else read_data_file(spec, "en", "de")
    assert corpus == EXPECTED.swapped()


def test_saved_dataset_keeps_its_validation_split(tmp_path):
    splits = read_folder(write_saved_dataset(tmp_path), "de", "en")
    assert splits["valid"].pairs() == [(GERMAN[0], ENGLISH[0])] and "test" not in splits


def test_windows_line_ends_and_byte_order_mark(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfeins\r\nzwei\r\n")
    assert read_lines(path) == ["eins", "zwei"]


def test_headerless_two_column_tsv_is_source_then_target(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hallo Welt\tHello world\nJa\tYes\n")
    assert read_table(path, "en", "fr").pairs() == [("Hallo Welt", "Hello world"), ("Ja", "Yes")]


def test_empty_file_gives_an_empty_corpus(tmp_path):
    (tmp_path / "e.tsv").write_text("")
    assert len(read_table(tmp_path / "e.tsv", "de", "en")) == 0


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.de: no such file"):
        read_lines(tmp_path / "nothing.de")


def test_unreadable_file(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match=r"cannot read .*folder: Is a directory"):
        read_lines(tmp_path / "folder")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "bad.de.gz").write_bytes(gzip.compress(b"hello\n" * 100)[:30])
    with pytest.raises(DataError, match=r"cannot read .*bad\.de\.gz"):
        read_lines(tmp_path / "bad.de.gz")


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path):
    path = tmp_path / "latin1.de"
    path.write_bytes("eins\nzwei\ndrei Straße\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.de, line 3: .*not UTF-8.*--encoding-errors replace"):
        read_lines(path)
    assert read_lines(path, encoding_errors="replace") == ["eins", "zwei", "drei Stra\ufffde"]


def test_unknown_encoding_errors_option(tmp_path):
    (tmp_path / "a").write_text("x\n")
    with pytest.raises(DataError, match="encoding_errors must be one of strict, replace"):
        read_text(tmp_path / "a", encoding_errors="loose")


def test_parallel_files_of_different_lengths_name_both(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "a.en").write_text("one\ntwo\n")
    with pytest.raises(DataError, match=r"a\.de has 3 lines but .*a\.en has 2"):
        read_parallel_text(tmp_path / "a.de", tmp_path / "a.en")


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [("t.tsv", "de\ten\na\tb\nc\td\te\n", 3), ("t.csv", 'de,en\n"a,1",b\n"multi\nline",x\nc,d,e\n', 5)],
)
def test_table_row_with_wrong_field_count(tmp_path, name, text, line):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=rf"{name}, line {line}: expected 2 fields, found 3"):
        read_table(tmp_path / name, "de", "en")


def test_table_header_without_the_language(tmp_path):
    (tmp_path / "t.tsv").write_text("de\ten\na\tb\n")
    with pytest.raises(DataError, match=r"t\.tsv: no 'fr' column; available languages: de, en"):
        read_table(tmp_path / "t.tsv", "fr", "en")


def test_wide_table_without_header(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\tc\n")
    with pytest.raises(DataError, match="3 fields but no header"):
        read_table(tmp_path / "t.tsv", "de", "en")


def test_records_without_the_language(tmp_path):
    with pytest.raises(DataError, match=r"train\.jsonl: no 'cs' text; available languages: de, en"):
        read_data_file(write_jsonl(tmp_path), "cs", "en")


def test_invalid_json_line(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"de": "a", "en": "b"}\n\n{"de": "c", "en": \n')
    with pytest.raises(DataError, match=r"r\.jsonl, line 3: not valid JSON"):
        read_data_file(tmp_path / "r.jsonl", "de", "en")


def test_record_with_a_missing_text(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"de": "a", "en": "b"}\n{"de": "c", "en": null}\n')
    with pytest.raises(DataError, match="record 2 has no 'en' text"):
        read_data_file(tmp_path / "r.jsonl", "de", "en")


def test_unknown_file_format(tmp_path):
    (tmp_path / "x.xml").write_text("<x/>")
    with pytest.raises(DataError, match=r"x\.xml: unknown data file format \.xml"):
        read_data_file(tmp_path / "x.xml", "de", "en")


def test_not_a_parquet_file(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"cannot read .*x\.parquet"):
        read_data_file(tmp_path / "x.parquet", "de", "en")
