"""Checkpoint writes that fail (a read-only folder or file system, a full disk, a file size limit, a refused
rename): a one-line CheckpointError, the previous files intact and loadable, no temporary file left.

None of these needs a non-root user: the faults are raised where the operating system would raise them, or,
for the file size limit, by the kernel itself (``RLIMIT_FSIZE``).
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from sandglass.checkpoint import WEIGHTS_FILE, CheckpointError, load_run, save_weights, write_run_files
from sandglass.config import DataConfig, RunConfig, preset
from sandglass.models import build_model
from sandglass.tokenizer import Tokenizer
from sandglass.training.state import load_resume_state, save_resume_state


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    texts = [" ".join(f"s{index}" for index in range(start, start + 5)) for start in range(20)]
    return Tokenizer.train(texts, vocab_size=30, model_type="word")


def refuse_creation(number: int):
    def mkstemp(*args, **kwargs):
        raise OSError(number, os.strerror(number))

    return mkstemp


def half_then(number: int):
    """A ``Path.write_bytes``/``write_text`` that writes half of a temporary file, then fails with ``number``."""

    def wrap(write):
        def half(path, data, *args, **kwargs):
            if not path.name.startswith("."):
                return write(path, data, *args, **kwargs)
            write(path, data[: len(data) // 2], *args, **kwargs)
            raise OSError(number, os.strerror(number))

        return half

    return wrap


@contextmanager
def file_size_limit(size: int):
    """Files written inside the block cannot grow past ``size`` bytes: the kernel answers EFBIG."""
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, previous_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_handler)


@contextmanager
def fault(name: str, monkeypatch):
    """The fault ``name`` in effect inside the block."""
    if name == "read-only folder":  # what creating a file in a folder without write permission gives
        monkeypatch.setattr(tempfile, "mkstemp", refuse_creation(errno.EACCES))
    elif name == "read-only file system":
        monkeypatch.setattr(tempfile, "mkstemp", refuse_creation(errno.EROFS))
    elif name == "disk full":
        monkeypatch.setattr(Path, "write_bytes", half_then(errno.ENOSPC)(Path.write_bytes))
        monkeypatch.setattr(Path, "write_text", half_then(errno.ENOSPC)(Path.write_text))
    elif name == "refused rename":
        monkeypatch.setattr(os, "replace", refuse_creation(errno.EPERM))
    if name == "file size limit":
        with file_size_limit(100):
            yield
    else:
        try:
            yield
        finally:
            monkeypatch.undo()


FAULTS = ["read-only folder", "read-only file system", "disk full", "file size limit", "refused rename"]
REASONS = {
    "read-only folder": "Permission denied",
    "read-only file system": "Read-only file system",
    "disk full": "No space left on device",
    "file size limit": "File too large",
    "refused rename": "Operation not permitted",
}


def trainer_state(step: int, note: str) -> dict:
    """A trainer state with every key a resume needs (the values do not matter here)."""
    return {
        "step": step,
        "epoch": 0,
        "batch_in_epoch": step,
        "optimizer": {},
        "scheduler": {},
        "rng": [],
        "best_bleu": None,
        "bad_validations": 0,
        "nonfinite_in_row": 0,
        "nonfinite_total": 0,
        "elapsed": 1.0,
        "world_size": 1,
        "note": note,
    }


def saved_run(run_dir: Path, tokenizer: Tokenizer) -> tuple[RunConfig, torch.nn.Module]:
    torch.manual_seed(0)
    config = RunConfig(model=preset("transformer-tiny").model)
    model = build_model(config.model, tokenizer.vocab_size)
    write_run_files(run_dir, config, tokenizer)
    save_weights(model, run_dir / WEIGHTS_FILE)
    return config, model


def assert_one_line_naming(error: CheckpointError, reason: str) -> None:
    message = str(error)
    advice = "free disk space" if reason in ("No space left on device", "File too large") else "check its permissions"
    assert "\n" not in message and reason in message and advice in message
    assert message.endswith("the previous checkpoint is intact")


def assert_no_temporaries(run_dir: Path) -> None:
    assert not [path.name for path in run_dir.iterdir() if path.name.endswith(".tmp")]


@pytest.mark.parametrize("name", FAULTS)
def test_weights_and_run_files_survive_a_failed_write(tmp_path, tokenizer, monkeypatch, name):
    """Fault: a read-only checkpoint folder or a full disk while model.safetensors, config.json or
    tokenizer.model is written."""
    config, model = saved_run(tmp_path, tokenizer)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    changed = build_model(config.model, tokenizer.vocab_size)
    other_config = RunConfig(model=preset("transformer-tiny").model, data=DataConfig(vocab_size=77))
    other_tokenizer = Tokenizer.train(["a b c d e"] * 5, vocab_size=8, model_type="word")
    for write in (
        lambda: save_weights(changed, tmp_path / WEIGHTS_FILE),
        lambda: write_run_files(tmp_path, other_config, other_tokenizer),
    ):
        with fault(name, monkeypatch), pytest.raises(CheckpointError) as caught:
            write()
        assert_one_line_naming(caught.value, REASONS[name])
        assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    loaded = load_run(tmp_path)
    assert loaded.config == config
    for name_, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name_], tensor)


@pytest.mark.parametrize("name", FAULTS)
def test_the_resume_checkpoint_survives_a_failed_write(tmp_path, tokenizer, monkeypatch, name):
    """Fault: a read-only checkpoint folder or a full disk while last-*.safetensors or trainer.pt is written."""
    config, model = saved_run(tmp_path, tokenizer)
    save_resume_state(tmp_path, model, trainer_state(10, "the previous checkpoint"))
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with fault(name, monkeypatch), pytest.raises(CheckpointError) as caught:
        save_resume_state(tmp_path, model, trainer_state(12, "the new checkpoint"))
    assert_one_line_naming(caught.value, REASONS[name])
    assert_no_temporaries(tmp_path)
    leftover = set(path.name for path in tmp_path.iterdir()) - set(before)
    assert leftover <= {"last-00000012.safetensors"}  # complete new weights whose state was never committed
    state = load_resume_state(tmp_path, build_model(config.model, tokenizer.vocab_size))
    assert (state["step"], state["note"]) == (10, "the previous checkpoint")


def test_run_files_get_the_mode_a_plain_open_would_give(tmp_path, tokenizer):
    # Temporary files start as 0o600; renamed into place they would hide a run from the user's group.
    previous = os.umask(0o027)
    try:
        saved_run(tmp_path, tokenizer)
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes and set(modes.values()) == {0o640}, modes


def test_a_failed_tokenizer_save_leaves_no_temporary_file(tmp_path, tokenizer, monkeypatch):
    def fail(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile._TemporaryFileWrapper, "write", fail, raising=False)
    with pytest.raises(OSError, match="No space left"):
        tokenizer.save(tmp_path / "tokenizer.model")
    assert list(tmp_path.iterdir()) == []
