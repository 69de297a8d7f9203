"""Exact resume, interruption by signals, and checkpoints that survive failed or hostile writes."""

import errno
import json
import os
import signal
import tempfile
from pathlib import Path

import pytest
import torch

from sandglass.checkpoint import CheckpointError, load_weights
from sandglass.models import build_model
from sandglass.tokenizer import Tokenizer
from sandglass.training import TrainingCallbacks, TrainingInterrupted, train
from sandglass.training.state import TRAINER_STATE_FILE, read_resume_state
from tests.training.runs import SPLITS, assert_same_weights, resume_weights, run_config, with_train


def run(config, run_dir, data_cache, **options):
    return train(config, run_dir, splits=SPLITS, data_cache=data_cache, **options)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """12 updates in one go, with dropout on (so the RNG state must be resumed too)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    cache = tmp_path_factory.mktemp("cache")
    result = run(run_config(dropout=0.1, max_steps=12), run_dir, cache)
    assert result.steps == 12 and result.stopped_because == "max_steps"
    return resume_weights(run_dir)


def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(uninterrupted, tmp_path, data_cache):
    config = run_config(dropout=0.1, max_steps=5)
    first = run(config, tmp_path, data_cache)
    assert first.steps == 5
    state = read_resume_state(tmp_path)
    assert (state["step"], state["batch_in_epoch"]) != (5, 0)  # stopped inside an epoch
    with pytest.raises(AssertionError):
        assert_same_weights(resume_weights(tmp_path), uninterrupted)

    second = run(with_train(config, max_steps=12), tmp_path, data_cache, resume=True)
    assert second.steps == 12 and second.epochs > first.epochs
    assert_same_weights(resume_weights(tmp_path), uninterrupted)
    assert len(list(tmp_path.glob("last-*.safetensors"))) == 1


class SignalAtStep(TrainingCallbacks):
    def __init__(self, step: int, signal_number: int) -> None:
        self.step, self.signal_number = step, signal_number

    def step_logged(self, event) -> None:
        if event.step == self.step:
            os.kill(os.getpid(), self.signal_number)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_resume_finishes(uninterrupted, tmp_path, data_cache, signal_number):
    before = signal.getsignal(signal_number)
    config = run_config(dropout=0.1, max_steps=12)
    with pytest.raises(TrainingInterrupted) as caught:
        run(config, tmp_path, data_cache, callbacks=SignalAtStep(4, signal_number))
    assert caught.value.signal_name == signal.Signals(signal_number).name
    assert caught.value.checkpoint_path == tmp_path / TRAINER_STATE_FILE
    assert read_resume_state(tmp_path)["step"] == 4
    assert signal.getsignal(signal_number) is before

    if signal_number == signal.SIGTERM:  # resuming after SIGINT is the same; once is enough
        result = run(config, tmp_path, data_cache, resume=True)
        assert result.steps == 12
        assert_same_weights(resume_weights(tmp_path), uninterrupted)


class Exploit:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_resume_refuses_a_trainer_state_that_would_run_code(tmp_path, data_cache):
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    run(run_config(max_steps=2), run_dir, data_cache)
    torch.save({"format": 1, "step": Exploit(marker)}, run_dir / TRAINER_STATE_FILE)
    with pytest.raises(CheckpointError, match="not loaded"):
        run(run_config(max_steps=4), run_dir, data_cache, resume=True)
    assert not marker.exists()


def test_resume_without_a_checkpoint_or_with_other_model_settings_fails(tmp_path, data_cache):
    with pytest.raises(CheckpointError, match="no resume checkpoint"):
        run(run_config(), tmp_path, data_cache, resume=True)
    run(run_config(max_steps=2), tmp_path, data_cache)
    with pytest.raises(CheckpointError, match="already holds a training run"):
        run(run_config(max_steps=2), tmp_path, data_cache)
    with pytest.raises(CheckpointError, match="model settings differ"):
        run(run_config(dropout=0.3, max_steps=4), tmp_path, data_cache, resume=True)


def assert_checkpoint_loads(run_dir, step: int) -> None:
    state = read_resume_state(run_dir)
    assert state["step"] == step
    config = run_config()
    model = build_model(config.model, Tokenizer.load(run_dir / "tokenizer.model").vocab_size)
    load_weights(model, run_dir / state["weights_file"])


def failing_after_half(prefix: str):
    """``Path.write_bytes`` that writes half of a temporary ``.{prefix}…`` file and then finds the disk full."""
    write_bytes = Path.write_bytes

    def half_then_fail(path, data):
        if not path.name.startswith(f".{prefix}"):
            return write_bytes(path, data)
        write_bytes(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    return half_then_fail


@pytest.mark.parametrize("writer", ["weights", "trainer_state"])
def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint(tmp_path, data_cache, monkeypatch, writer):
    config = run_config(max_steps=4, checkpoint_every=2)
    run(config, tmp_path, data_cache)
    assert_checkpoint_loads(tmp_path, 4)
    monkeypatch.setattr(Path, "write_bytes", failing_after_half("last-" if writer == "weights" else "trainer.pt"))
    with pytest.raises(CheckpointError, match="No space left") as caught:
        run(with_train(config, max_steps=8), tmp_path, data_cache, resume=True)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    assert_checkpoint_loads(tmp_path, 4)
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unwritable_run_folder_is_a_checkpoint_error(tmp_path, data_cache, monkeypatch):
    config = run_config(max_steps=2)
    run(config, tmp_path, data_cache)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # what a read-only folder does to every atomic write
    with pytest.raises(CheckpointError, match="Permission denied") as caught:
        run(with_train(config, max_steps=4), tmp_path, data_cache, resume=True)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    assert_checkpoint_loads(tmp_path, 2)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_a_read_only_run_folder_is_a_checkpoint_error(tmp_path, data_cache):
    config = run_config(max_steps=2)
    run(config, tmp_path, data_cache)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(CheckpointError):
            run(with_train(config, max_steps=4), tmp_path, data_cache, resume=True)
    finally:
        tmp_path.chmod(0o755)
    assert_checkpoint_loads(tmp_path, 2)


def test_a_fresh_run_clears_what_a_run_killed_before_its_first_checkpoint_left(tmp_path, data_cache):
    run(run_config(max_steps=2), tmp_path, data_cache)
    (tmp_path / TRAINER_STATE_FILE).unlink()  # as if killed before the first checkpoint
    (tmp_path / ".trainer.pt.abc123.tmp").write_bytes(b"half a file")
    (tmp_path / "metrics.jsonl").write_text('{"event": "step", "step": 1, "loss": 9.0}\n{"event": "st')
    result = run(run_config(max_steps=3), tmp_path, data_cache)
    assert result.steps == 3 and not list(tmp_path.glob(".*.tmp"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 3]  # three step logs and the final validation, nothing left from before
