"""Resume checkpoints: the latest weights and the trainer state, consistent under ``kill -9`` at any moment.

A run folder being trained holds, beside ``config.json``, ``tokenizer.model`` and ``model.safetensors`` (the
best weights by validation BLEU):

- ``last-<step>.safetensors``: the weights to resume from (safetensors, nothing executable);
- ``trainer.pt``: the trainer state, written with ``torch.save`` and read back only with
  ``torch.load(weights_only=True)``, so it holds tensors, numbers, strings, lists and dicts and nothing else:
  optimizer and scheduler state, step, epoch, batch position in the epoch, the RNG states of every rank, best
  BLEU, bad-validation and non-finite counts, elapsed time, and ``weights_file``, the name of its weights.

A checkpoint is written in this order: (1) the weights under their step-numbered name (temporary file, fsync,
rename); (2) the trainer state over ``trainer.pt`` the same way, the rename being the commit point; (3) fsync
of the folder, then the older ``last-*.safetensors`` are deleted. A kill before (2) leaves the old
``trainer.pt``, whose weights still exist; a kill after it leaves the new pair. Temporary files left by a kill
(``.*.tmp``) are removed when training starts again.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sandglass.checkpoint import CheckpointError, atomic_write, load_weights, save_weights

TRAINER_STATE_FILE = "trainer.pt"
STATE_FORMAT = 1
REQUIRED_KEYS = (
    "format",
    "weights_file",
    "step",
    "epoch",
    "batch_in_epoch",
    "optimizer",
    "scheduler",
    "rng",
    "best_bleu",
    "bad_validations",
    "nonfinite_in_row",
    "nonfinite_total",
    "elapsed",
    "world_size",
)


def weights_file_name(step: int) -> str:
    return f"last-{step:08d}.safetensors"


def capture_rng() -> dict[str, Any]:
    """The torch, CUDA, Python and numpy random states as tensors and plain numbers (safe to load)."""
    version, internal, gauss = random.getstate()
    numpy_kind, numpy_keys, numpy_position, numpy_has_gauss, numpy_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [
            numpy_kind,
            torch.from_numpy(numpy_keys.astype(np.int64)),
            numpy_position,
            numpy_has_gauss,
            numpy_gauss,
        ],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng`: every generator continues exactly where it was captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    numpy_kind, numpy_keys, numpy_position, numpy_has_gauss, numpy_gauss = state["numpy"]
    np.random.set_state(
        (numpy_kind, numpy_keys.numpy().astype(np.uint32), numpy_position, numpy_has_gauss, numpy_gauss)
    )


def has_resume_state(run_dir: Path) -> bool:
    return (Path(run_dir) / TRAINER_STATE_FILE).is_file()


def save_resume_state(run_dir: Path, model: nn.Module, state: dict[str, Any]) -> Path:
    """Write ``model``'s weights and the trainer ``state`` as the run's resume checkpoint; returns the state
    file. Raises CheckpointError (the previous checkpoint intact) when the folder cannot be written."""
    run_dir = Path(run_dir)
    weights_name = weights_file_name(int(state["step"]))
    save_weights(model, run_dir / weights_name)
    state_path = run_dir / TRAINER_STATE_FILE
    complete = {**state, "format": STATE_FORMAT, "weights_file": weights_name}
    serialized = io.BytesIO()  # written by Python, so a full disk is an OSError and not torch's RuntimeError
    torch.save(complete, serialized)
    atomic_write(state_path, lambda temporary: temporary.write_bytes(serialized.getvalue()))
    _sync_folder(run_dir)
    for old in run_dir.glob("last-*.safetensors"):
        if old.name != weights_name:
            old.unlink(missing_ok=True)
    return state_path


def read_resume_state(run_dir: Path) -> dict[str, Any]:
    """The trainer state of ``run_dir``, loaded without unpickling arbitrary objects."""
    path = Path(run_dir) / TRAINER_STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run has no resume checkpoint yet (train without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged or foreign file fails in many ways (zip, pickle, EOF, OS)
        reason = " ".join(str(error).split())[:200]
        raise CheckpointError(
            f"{path} is damaged or not a sandglass trainer state ({type(error).__name__}: {reason}); "
            "it was not loaded; restore it or start a new run"
        ) from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(state, dict) or key not in state]
    if missing or state["format"] != STATE_FORMAT:
        raise CheckpointError(
            f"{path} is not a sandglass trainer state of format {STATE_FORMAT} (missing {missing[:3]}); start a new run"
        )
    weights_name = state["weights_file"]
    if not isinstance(weights_name, str) or Path(weights_name).name != weights_name:
        raise CheckpointError(f"{path} names weights {weights_name!r} outside its run folder; it was not used")
    return state


def load_resume_state(run_dir: Path, model: nn.Module) -> dict[str, Any]:
    """Load the resume weights into ``model`` and return the trainer state that belongs to them."""
    state = read_resume_state(run_dir)
    load_weights(model, Path(run_dir) / state["weights_file"])
    return state


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files a killed checkpoint write left behind."""
    for leftover in Path(run_dir).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    # Make the renames durable; some file systems cannot fsync a folder, which only weakens durability.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
