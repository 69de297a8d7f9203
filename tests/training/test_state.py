import random

import numpy as np
import pytest
import torch

from sandglass.checkpoint import CheckpointError
from sandglass.training.state import (
    TRAINER_STATE_FILE,
    capture_rng,
    load_resume_state,
    read_resume_state,
    restore_rng,
    save_resume_state,
)


def draws():
    return torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist(), random.gauss(0, 1)


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's generator state
    torch.save(capture_rng(), tmp_path / "rng.pt")
    expected = draws()
    assert draws() != expected
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draws() == expected


def fake_state(step: int) -> dict:
    keys = ["epoch", "batch_in_epoch", "bad_validations", "nonfinite_in_row", "nonfinite_total", "world_size"]
    return {"step": step, **dict.fromkeys(keys, 0), "optimizer": {}, "scheduler": {}, "rng": [],
            "best_bleu": None, "elapsed": 0.0}  # fmt: skip


def test_a_checkpoint_names_its_weights_and_removes_older_ones(tmp_path):
    model = torch.nn.Linear(2, 2)
    save_resume_state(tmp_path, model, fake_state(1))
    with torch.no_grad():
        model.weight.add_(1.0)
    save_resume_state(tmp_path, model, fake_state(2))
    assert [path.name for path in tmp_path.glob("last-*")] == ["last-00000002.safetensors"]
    restored = torch.nn.Linear(2, 2)
    assert load_resume_state(tmp_path, restored)["step"] == 2
    assert torch.equal(restored.weight, model.weight)


def test_damaged_or_foreign_trainer_states_are_refused(tmp_path):
    (tmp_path / TRAINER_STATE_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="damaged"):
        read_resume_state(tmp_path)
    torch.save({"format": 1}, tmp_path / TRAINER_STATE_FILE)
    with pytest.raises(CheckpointError, match="missing"):
        read_resume_state(tmp_path)
    save_resume_state(tmp_path, torch.nn.Linear(2, 2), fake_state(3))
    state = torch.load(tmp_path / TRAINER_STATE_FILE, weights_only=True)
    torch.save({**state, "weights_file": "../elsewhere.safetensors"}, tmp_path / TRAINER_STATE_FILE)
    with pytest.raises(CheckpointError, match="outside its run folder"):
        read_resume_state(tmp_path)
