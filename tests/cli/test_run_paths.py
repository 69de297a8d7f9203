"""A run folder's config.json cannot make translate, eval, repl or summary open paths outside what the user
named, and nothing reaches the network unless a hub data set is asked for."""

from __future__ import annotations

import json
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandglass.checkpoint import CONFIG_FILE, load_run
from tests.cli.runs import make_run, run_cli

OPENED: list[str] = []
_RECORDING = [False]
FILE_EVENTS = ("open", "os.listdir", "os.scandir", "os.stat")


def _record(event: str, args: tuple) -> None:
    if _RECORDING[0] and event in FILE_EVENTS and args and isinstance(args[0], (str, bytes, Path)):
        OPENED.append(str(args[0]))


sys.addaudithook(_record)  # audit hooks cannot be removed; this one records only inside ``files_touched``


@contextmanager
def files_touched():
    """The paths Python opens, lists or stats inside the block."""
    OPENED.clear()
    _RECORDING[0] = True
    try:
        yield OPENED
    finally:
        _RECORDING[0] = False


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A run whose config.json names data in a folder outside the run, next to a secret there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.tsv").write_text("s01\ts02\n" * 50, encoding="utf-8")
    run_dir = make_run(tmp_path / "work" / "run", max_length=8)
    raw = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["data"]["dataset"] = "../outside/secret.tsv"
    raw["data"]["data_dir"] = str(outside)
    (run_dir / CONFIG_FILE).write_text(json.dumps(raw), encoding="utf-8")
    return run_dir, outside


def touched_under(paths: list[str], folder: Path) -> list[str]:
    return [path for path in paths if Path(path).resolve().is_relative_to(folder.resolve())]


def test_loading_a_run_reads_only_its_fixed_files(hostile):
    """Fault: a config.json naming ../../ and absolute paths; loading the run opens only files of the run."""
    run_dir, outside = hostile
    with files_touched() as opened:
        run = load_run(run_dir)
    assert run.config.data.dataset == "../outside/secret.tsv"
    names = {Path(path).name for path in touched_under(opened, run_dir.parent.parent)}
    assert names <= {"run", CONFIG_FILE, "tokenizer.model", "model.safetensors"}
    assert not touched_under(opened, outside)


def test_translate_repl_summary_and_eval_files_do_not_follow_the_config(hostile, tmp_path, monkeypatch):
    """Fault: translate, repl, summary and eval with named files, of a run whose config names outside paths."""
    run_dir, outside = hostile
    monkeypatch.chdir(run_dir.parent)
    sources, references = tmp_path / "src.txt", tmp_path / "ref.txt"
    sources.write_text("s01 s02\n", encoding="utf-8")
    references.write_text("s02 s01\n", encoding="utf-8")
    commands = [
        ["translate", str(sources), "-c", str(run_dir)],
        ["repl", "-c", str(run_dir)],
        ["summary", "--checkpoint", str(run_dir)],
        ["eval", "-c", str(run_dir), "--src-file", str(sources), "--ref-file", str(references)],
    ]
    for args in commands:
        with files_touched() as opened:
            result = run_cli(*args, input="s01\n")
        assert result.exit_code == 0, (args, result.stderr)
        assert not touched_under(opened, outside), args


def test_eval_of_the_runs_own_split_refuses_paths_outside_the_current_folder(hostile, monkeypatch):
    """Fault: eval's default split, when config.json names data outside the current folder."""
    run_dir, outside = hostile
    monkeypatch.chdir(run_dir.parent)
    with files_touched() as opened:
        result = run_cli("eval", "-c", str(run_dir))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "outside the current folder" in line and "--data" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert not touched_under(opened, outside)


def test_a_symbolic_link_out_of_the_current_folder_is_not_followed(hostile, monkeypatch):
    """Fault: a config.json path that stays inside the current folder by name but leaves it through a link."""
    run_dir, outside = hostile
    work = run_dir.parent
    (work / "data").symlink_to(outside, target_is_directory=True)
    raw = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["data"].update(dataset="data/secret.tsv", data_dir=None)
    (run_dir / CONFIG_FILE).write_text(json.dumps(raw), encoding="utf-8")
    monkeypatch.chdir(work)
    with files_touched() as opened:
        result = run_cli("eval", "-c", str(run_dir))
    assert result.exit_code == 1 and "outside the current folder" in result.stderr
    assert not touched_under(opened, outside)


def test_eval_reads_the_runs_data_inside_the_current_folder(hostile, monkeypatch):
    """The other side: a run trained on a file in the current folder is evaluated on it."""
    run_dir, _ = hostile
    work = run_dir.parent
    (work / "pairs.tsv").write_text("".join(f"s0{i} s1{i}\ts1{i} s0{i}\n" for i in range(10)) * 3, encoding="utf-8")
    raw = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["data"].update(dataset="pairs.tsv", data_dir=None)
    (run_dir / CONFIG_FILE).write_text(json.dumps(raw), encoding="utf-8")
    monkeypatch.chdir(work)
    result = run_cli("eval", "-c", str(run_dir), "--split", "valid", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sentences"] == 3


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to reach the network is recorded and fails."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_nothing_is_downloaded_without_a_hub_data_set(tmp_path, monkeypatch, no_network):
    """Fault: network access from commands that do not ask for a hub data set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    run_dir = make_run(tmp_path / "run", max_length=8)
    (tmp_path / "in.txt").write_text("s01 s02\n", encoding="utf-8")
    (tmp_path / "pairs.tsv").write_text("s01 s02\ts02 s01\n" * 20, encoding="utf-8")
    commands = [
        ["translate", "in.txt", "-c", str(run_dir)],
        ["repl", "-c", str(run_dir)],
        ["eval", "-c", str(run_dir), "--split", "valid"],
        ["summary", "--checkpoint", str(run_dir)],
        ["prepare", "--dataset", "pairs.tsv", "--vocab-size", "20", "--data-cache", "cache"],
    ]
    for args in commands:
        result = run_cli(*args, input="s01\n")
        assert result.exit_code == 0, (args, result.stderr)
    assert no_network == []


def test_eval_follows_data_the_user_names_with_data(hostile, monkeypatch):
    """The way out of the refusal: the user names the data's new place with --data."""
    run_dir, outside = hostile
    monkeypatch.chdir(run_dir.parent)
    result = run_cli("eval", "-c", str(run_dir), "--data", str(outside / "secret.tsv"), "--split", "valid", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sentences"] == 5  # a tenth of the 50 pairs, held out for validation
