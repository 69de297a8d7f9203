import subprocess
import sys
from pathlib import Path

import pytest

import sandglass.cli.train as train_module
import sandglass.cli.translate as translate_module
from sandglass.checkpoint import CheckpointError
from sandglass.cli.errors import EXIT_FAILURE, EXIT_USAGE, describe
from sandglass.config import ConfigError
from sandglass.data.corpus import DataError
from sandglass.tokenizer import TokenizerError
from sandglass.training import TrainingInterrupted, TrainingStopped
from tests.cli.runs import make_run, run_cli


def assert_one_error_line(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "run", max_length=8)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["translate", "in.txt", "--beam", "0"], ["--beam"]),
        (["translate", "in.txt", "--batch-size", "-3"], ["--batch-size"]),
        (["translate", "in.txt", "--device", "tpu7"], ["device", "tpu7"]),
        (["translate"], ["FILE"]),
        (["translate", "in.txt", "--precision", "half"], ["--precision", "half", "auto, float32, bfloat16"]),
        (["eval", "--precision", "fp8"], ["--precision", "fp8"]),
        (["train", "--vocab-size", "0"], ["vocab_size", "--vocab-size"]),
        (["train", "--max-tokens", "-5"], ["max_tokens", "above zero"]),
        (["train", "--lr", "0"], ["lr", "above zero"]),
        (["train", "--max-steps", "0"], ["max_steps"]),
        (["train", "--max-time", "soon"], ["--max-time", "30m"]),
        (["train", "--arch", "lstm"], ["unknown architecture", "lstm"]),
        (["train", "--task", "summarize"], ["task", "translate, reconstruct"]),
        (["train", "--preset", "huge"], ["unknown preset", "huge"]),
        (["train", "--src", "german!"], ["unknown language", "german!"]),
        (["train", "--device", "gpu"], ["unknown device"]),
        (["train", "--encoding-errors", "ignore"], ["encoding_errors"]),
        (["train", "--preset", "tiny", "--arch", "transformer"], ["--preset", "--arch"]),
        (["train", "--resume", "--preset", "tiny"], ["--resume", "--preset"]),
        (["train", "--no-such-option"], ["--no-such-option"]),
        (["eval", "--src-file", "a.txt"], ["--src-file and --ref-file"]),
        (["eval", "--split", "dev"], ["--split"]),
        (["summary"], ["--preset, --config or --checkpoint"]),
        (["summary", "--preset", "tiny", "--checkpoint", "x"], ["conflict"]),
        (["summary", "--preset", "nope"], ["unknown preset"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_usage_mistakes_give_one_line_and_status_2(args, fragments):
    assert_one_error_line(run_cli(*args), EXIT_USAGE, *fragments)


def test_missing_files_give_one_line_and_status_1(run_dir, tmp_path):
    assert_one_error_line(run_cli("translate", str(tmp_path / "missing.txt")), EXIT_FAILURE, "missing.txt")
    missing_config = str(tmp_path / "missing.toml")
    assert_one_error_line(run_cli("train", "--config", missing_config), EXIT_FAILURE, "missing.toml")
    assert_one_error_line(run_cli("summary", "--config", missing_config), EXIT_FAILURE, "missing.toml")
    line = assert_one_error_line(run_cli("translate", "-", "-c", str(tmp_path / "nowhere")), EXIT_FAILURE)
    assert "nowhere" in line and "--checkpoint" in line


def test_no_run_to_use_or_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_error_line(run_cli("repl"), EXIT_FAILURE, "no trained run", "sandglass train")
    assert_one_error_line(run_cli("train", "--resume"), EXIT_FAILURE, "no run to resume")


def test_damaged_checkpoint_and_bad_input_bytes(run_dir, tmp_path):
    damaged = make_run(tmp_path / "damaged", max_length=8)
    (damaged / "model.safetensors").write_bytes(b"not safetensors")
    assert_one_error_line(run_cli("translate", "-", "-c", str(damaged), input="s01\n"), EXIT_FAILURE, "damaged")
    line = assert_one_error_line(run_cli("translate", "-", "-c", str(run_dir), input=b"s01 \xff\n"), EXIT_FAILURE)
    assert "not UTF-8" in line and "--encoding-errors replace" in line
    replaced = run_cli("translate", "-", "-c", str(run_dir), "--encoding-errors", "replace", input=b"s01 \xff\n")
    assert replaced.exit_code == 0 and len(replaced.stdout.splitlines()) == 1


def test_data_errors_give_status_1(run_dir, tmp_path):
    sources, references = tmp_path / "src.txt", tmp_path / "ref.txt"
    sources.write_text("s01\ns02\n", encoding="utf-8")
    references.write_text("s01\n", encoding="utf-8")
    args = ["eval", "-c", str(run_dir), "--src-file", str(sources), "--ref-file", str(references)]
    assert_one_error_line(run_cli(*args), EXIT_FAILURE, "line-aligned")
    assert_one_error_line(run_cli("prepare", "--dataset", str(tmp_path / "none.tsv")), EXIT_FAILURE, "none.tsv")


def test_bad_config_files_give_status_2(tmp_path):
    cases = {
        "broken.toml": ("[train\nlr = 1", "not valid TOML"),
        "section.toml": ("[optimizer]\nlr = 0.1\n", "optimizer"),
        "key.toml": ("[train]\nlearning_rate = 0.1\n", "learning_rate"),
        "type.toml": ("[data]\nvocab_size = 'many'\n", "vocab_size"),
        "time.toml": ("[train]\nmax_time = 'later'\n", "max_time"),
    }
    for name, (text, fragment) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert_one_error_line(run_cli("train", "--config", str(path)), EXIT_USAGE, fragment)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DataError("d"), EXIT_FAILURE),
        (CheckpointError("c"), EXIT_FAILURE),
        (TokenizerError("t"), EXIT_FAILURE),
        (TrainingStopped("s"), EXIT_FAILURE),
        (ConfigError("x"), EXIT_USAGE),
        (FileNotFoundError(2, "no such file", "f.txt"), EXIT_FAILURE),
        (TrainingInterrupted(Path("runs/a/trainer.pt"), "SIGINT"), 130),
        (TrainingInterrupted(Path("runs/a/trainer.pt"), "SIGTERM"), 143),
    ],
)
def test_each_error_type_has_its_exit_status(error, code):
    message, status = describe(error)
    assert status == code and "\n" not in message


def test_interrupted_training_says_where_the_checkpoint_is(monkeypatch, tmp_path):
    def interrupted(config, run_dir, **kwargs):
        raise TrainingInterrupted(run_dir / "trainer.pt", "SIGTERM")

    monkeypatch.setattr(train_module, "train", interrupted)
    run_dir = str(tmp_path / "run")
    assert_one_error_line(run_cli("train", "--preset", "tiny", "--run-dir", run_dir), 143, run_dir, "--resume")


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, run_dir):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(translate_module, "translate_with_progress", broken)
    args = ["translate", "-", "-c", str(run_dir)]
    assert_one_error_line(run_cli(*args, input="s01\n"), EXIT_FAILURE, "RuntimeError: boom", "--debug")
    for debug_args in (["--debug", *args], [*args, "--debug"]):
        result = run_cli(*debug_args, input="s01\n")
        assert result.exit_code == EXIT_FAILURE
        assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_real_process_exits_with_one_line(tmp_path):
    for args, code in ((["translate", str(tmp_path / "gone.txt")], 1), (["translate", "-", "--beam", "0"], 2)):
        done = subprocess.run(
            [sys.executable, "-m", "sandglass", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode == code
        assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_resume_refuses_model_or_data_settings_from_a_file(tmp_path):
    config = tmp_path / "data.toml"
    config.write_text('[data]\ndataset = "copy"\n[train]\nlr = 0.1\n', encoding="utf-8")
    result = run_cli("train", "--resume", "--config", str(config), "--run-dir", str(tmp_path))
    assert_one_error_line(result, EXIT_USAGE, "[data] of --config")
