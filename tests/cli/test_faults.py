"""Bad data, hostile text, damaged checkpoints, a full disk and a read-only run folder, through the command line:
each gives one ``error:`` line that says what is wrong and what to do, a non-zero status, and no traceback."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandglass.checkpoint import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, load_run
from sandglass.cli.errors import EXIT_FAILURE
from sandglass.training.state import load_resume_state, read_resume_state
from tests.cli.runs import make_run, run_cli

TRAIN_TOML = """\
[model]
preset = "transformer-tiny"
[train]
max_tokens = 256
warmup_steps = 2
checkpoint_every = 2
validate_every = 1000
device = "cpu"
"""


def assert_one_error_line(result, *fragments: str, code: int = EXIT_FAILURE) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def pairs_tsv(count: int = 60) -> str:
    return "".join(f"w{i % 7} w{i % 5} w{i % 3}\tw{i % 3} w{i % 5} w{i % 7}\n" for i in range(count))


def train_args(tmp_path: Path, dataset: str, *extra: str) -> list[str]:
    (tmp_path / "train.toml").write_text(TRAIN_TOML, encoding="utf-8")
    return [
        "train",
        "--config",
        str(tmp_path / "train.toml"),
        "--dataset",
        dataset,
        "--vocab-size",
        "30",
        "--run-dir",
        str(tmp_path / "run"),
        "--data-cache",
        str(tmp_path / "cache"),
        *extra,
    ]


# Data


def test_missing_and_unreadable_data_files(tmp_path):
    """Fault: a missing or unreadable data file."""
    (tmp_path / "here.en").write_text("one\n", encoding="utf-8")
    missing = f"{tmp_path / 'gone.de'},{tmp_path / 'here.en'}"
    assert_one_error_line(run_cli(*train_args(tmp_path, missing)), "gone.de: no such file")
    (tmp_path / "folder.de").mkdir()
    unreadable = f"{tmp_path / 'folder.de'},{tmp_path / 'here.en'}"
    assert_one_error_line(run_cli(*train_args(tmp_path, unreadable)), "cannot read", "folder.de", "Is a directory")


def test_bytes_that_are_not_utf8_name_the_file_and_line_and_replace_goes_on(tmp_path):
    """Fault: training data with bytes that are not UTF-8; --encoding-errors replace goes on."""
    data = tmp_path / "latin1.tsv"
    data.write_bytes(pairs_tsv(2).encode() + "Straße\tstreet\n".encode("latin-1") + pairs_tsv(57).encode())
    line = assert_one_error_line(run_cli(*train_args(tmp_path, str(data))), "latin1.tsv, line 3", "not UTF-8")
    assert "--encoding-errors replace" in line
    result = run_cli(*train_args(tmp_path, str(data), "--encoding-errors", "replace", "--max-steps", "2"))
    assert result.exit_code == 0, result.stderr
    assert "finished (max steps) after 2 steps" in result.stdout


def test_translate_input_that_is_not_utf8_names_the_file_and_line(tmp_path):
    """Fault: translate input with bytes that are not UTF-8; --encoding-errors replace goes on."""
    run_dir = make_run(tmp_path / "run", max_length=8)
    source = tmp_path / "in.txt"
    source.write_bytes(b"s01 s02\ns03 \xe9t\xe9\ns04\n")
    assert_one_error_line(run_cli("translate", str(source), "-c", str(run_dir)), "in.txt, line 2", "not UTF-8")
    result = run_cli("translate", str(source), "-c", str(run_dir), "--encoding-errors", "replace")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3


def test_parallel_files_with_different_line_counts_name_both(tmp_path):
    """Fault: parallel files with different line counts."""
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("one\ntwo\n", encoding="utf-8")
    dataset = f"{tmp_path / 'a.de'},{tmp_path / 'a.en'}"
    assert_one_error_line(run_cli(*train_args(tmp_path, dataset)), "a.de has 3 lines", "a.en has 2")


def test_an_empty_training_set_after_filtering(tmp_path):
    """Fault: no training pair left once blank rows are skipped or pairs are filtered by length."""
    (tmp_path / "blank.tsv").write_text("\n \n\t\n", encoding="utf-8")
    assert_one_error_line(run_cli(*train_args(tmp_path, str(tmp_path / "blank.tsv"))), "blank.tsv", "is empty")
    (tmp_path / "long.tsv").write_text(pairs_tsv(), encoding="utf-8")
    result = run_cli(*train_args(tmp_path, str(tmp_path / "long.tsv"), "--max-length", "1"))
    assert_one_error_line(result, "no sentence pair has 1 to 1 tokens", "raise the maximum length")


def test_a_table_row_with_the_wrong_number_of_fields(tmp_path):
    """Fault: a TSV/CSV row with the wrong number of fields."""
    (tmp_path / "rows.tsv").write_text(pairs_tsv(4) + "a\tb\tc\n" + pairs_tsv(30), encoding="utf-8")
    result = run_cli(*train_args(tmp_path, str(tmp_path / "rows.tsv")))
    assert_one_error_line(result, "rows.tsv, line 5", "expected 2 fields, found 3")
    (tmp_path / "rows.csv").write_text("de,en\na,b\nc\n", encoding="utf-8")
    assert_one_error_line(run_cli(*train_args(tmp_path, str(tmp_path / "rows.csv"))), "rows.csv, line 3")


# translate


def test_translate_keeps_one_line_per_input_line_whatever_the_text(tmp_path):
    """Fault: empty, whitespace-only, over-long and hostile lines given to translate."""
    run_dir = make_run(tmp_path / "run", max_length=8)
    lines = ["s01 s02", "", "   \t", "s01\x00s02", "a\rb", "x\u2028y", "s05 " * 3000, "😀\u202e\u0301", "s03\r"]
    source = tmp_path / "in.txt"
    source.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
    result = run_cli("translate", str(source), "-c", str(run_dir))
    assert result.exit_code == 0, result.stderr
    outputs = result.stdout.split("\n")
    assert outputs[-1] == "" and len(outputs) - 1 == len(lines)
    assert outputs[1] == outputs[2] == ""
    assert "truncated" in result.stderr and "Traceback" not in result.stderr


# Checkpoints


def damage(run_dir: Path, kind: str, tmp_path: Path) -> None:
    if kind == "missing folder":
        shutil.rmtree(run_dir)
    elif kind in ("missing config", "missing tokenizer", "missing weights"):
        name = {"missing config": CONFIG_FILE, "missing tokenizer": TOKENIZER_FILE}.get(kind, WEIGHTS_FILE)
        (run_dir / name).unlink()
    elif kind == "truncated weights":
        weights = (run_dir / WEIGHTS_FILE).read_bytes()
        (run_dir / WEIGHTS_FILE).write_bytes(weights[: len(weights) // 2])
    elif kind == "corrupted weights":
        weights = bytearray((run_dir / WEIGHTS_FILE).read_bytes())
        weights[8:40] = b"\xff" * 32  # the JSON header
        (run_dir / WEIGHTS_FILE).write_bytes(bytes(weights))
    elif kind in ("incompatible version", "not JSON"):
        raw = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        raw["version"] = 99
        (run_dir / CONFIG_FILE).write_text(json.dumps(raw) if kind != "not JSON" else "{", encoding="utf-8")
    elif kind == "damaged tokenizer":
        (run_dir / TOKENIZER_FILE).write_bytes(b"\x00not a sentencepiece model")
    elif kind == "another architecture":
        other = make_run(tmp_path / "other", preset_name="tiny", max_length=8)
        shutil.copy(other / WEIGHTS_FILE, run_dir / WEIGHTS_FILE)


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("missing folder", ["does not exist", "--checkpoint"]),
        ("missing config", ["config.json does not exist"]),
        ("missing tokenizer", ["tokenizer.model is missing"]),
        ("missing weights", ["model.safetensors is missing", "train it first"]),
        ("truncated weights", ["model.safetensors is damaged"]),
        ("corrupted weights", ["model.safetensors is damaged"]),
        ("incompatible version", ["config version 99 is not supported", "retrain"]),
        ("not JSON", ["config.json is not valid JSON"]),
        ("damaged tokenizer", ["tokenizer.model", "not a sentencepiece model"]),
        ("another architecture", ["model.safetensors does not fit this model", "another architecture"]),
    ],
)
def test_a_bad_checkpoint_gives_one_line(tmp_path, kind, fragments):
    """Fault: missing files, a truncated or corrupted model.safetensors, an incompatible config version, a missing
    tokenizer, a checkpoint of another architecture."""
    run_dir = make_run(tmp_path / "run", max_length=8)
    damage(run_dir, kind, tmp_path)
    for command in (["translate", "-"], ["repl"], ["eval", "--split", "valid"]):
        assert_one_error_line(run_cli(*command, "-c", str(run_dir), input="s01\n"), *fragments)


# A full disk and a read-only run folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder trained for 4 steps, with its resume checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    (root / "pairs.tsv").write_text(pairs_tsv(), encoding="utf-8")
    result = run_cli(*train_args(root, str(root / "pairs.tsv"), "--max-steps", "4"))
    assert result.exit_code == 0, result.stderr
    return root / "run"


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def assert_checkpoint_of_step(run_dir: Path, step: int) -> None:
    run = load_run(run_dir)
    assert load_resume_state(run_dir, run.model)["step"] == step
    assert not list(run_dir.glob(".*.tmp"))


def test_a_read_only_run_folder_gives_one_line_and_keeps_the_checkpoint(trained, tmp_path, monkeypatch):
    """Fault: a read-only checkpoint folder (what creating a file there gives, so it runs as root too)."""
    run_dir = copy_of(trained, tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = run_cli("train", "--resume", "--run-dir", str(run_dir), "--max-steps", "8")
    assert_one_error_line(result, f"cannot write in {run_dir}", "Permission denied", "check its permissions")
    monkeypatch.undo()
    assert_checkpoint_of_step(run_dir, 4)


def limit_file_size(size: int):
    def limit() -> None:  # runs in the child before it starts Python
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_full_disk_gives_one_line_and_keeps_the_checkpoint(trained, tmp_path):
    """Fault: the disk fills up while a checkpoint is written (the kernel refuses to grow files past a limit)."""
    run_dir = copy_of(trained, tmp_path)
    weights_size = (run_dir / read_resume_state(run_dir)["weights_file"]).stat().st_size
    rewritten = max((run_dir / name).stat().st_size for name in (CONFIG_FILE, TOKENIZER_FILE, "metrics.jsonl"))
    assert rewritten < weights_size
    limit = (rewritten + weights_size) // 2  # a resume rewrites those first; the new weights no longer fit
    done = subprocess.run(
        [sys.executable, "-m", "sandglass", "train", "--resume", "--run-dir", str(run_dir), "--max-steps", "8"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=limit_file_size(limit),
    )
    assert done.returncode == EXIT_FAILURE, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: could not write {run_dir}/last-00000006.safetensors (File too large)")
    assert "free disk space" in lines[0] and "the previous checkpoint is intact" in lines[0]
    assert_checkpoint_of_step(run_dir, 4)
