"""Run folders: what a checkpoint holds, written atomically, read without unpickling anything.

A run folder holds ``config.json`` (a :class:`RunConfig`), ``tokenizer.model`` (sentencepiece) and
``model.safetensors`` (the weights to translate with: the best by validation BLEU, else the latest). Training adds
its own resume files beside them (see ``sandglass.training.state``). Every file is written to a temporary name in
the same folder, flushed to disk, then renamed over the old one, so a kill at any moment leaves either the old
or the new file, never half of one.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as serialize_weights
from torch import nn

from sandglass.config import ConfigError, RunConfig
from sandglass.files import regular_file_mode
from sandglass.models import build_model
from sandglass.tokenizer import Tokenizer, TokenizerError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.model"
WEIGHTS_FILE = "model.safetensors"
FULL_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class CheckpointError(ValueError):
    """A run folder that cannot be written or read; the message names the file and what to do."""


@dataclass
class LoadedRun:
    """A run folder read back: its configuration, the model in eval mode, and the tokenizer."""

    path: Path
    config: RunConfig
    model: nn.Module
    tokenizer: Tokenizer


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)``, flush it to disk, then rename it to ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CheckpointError(
            f"cannot write in {path.parent} ({error.strerror}); {_advice(error)}; the previous checkpoint is intact"
        ) from error
    temporary_path = Path(temporary)
    try:
        try:
            os.fchmod(handle, regular_file_mode())
        finally:
            os.close(handle)
        write(temporary_path)
        with open(temporary_path, "rb+") as flushed:
            os.fsync(flushed.fileno())
        os.replace(temporary_path, path)
    except OSError as error:
        temporary_path.unlink(missing_ok=True)
        raise CheckpointError(
            f"could not write {path} ({error.strerror or error}); {_advice(error)}; the previous checkpoint is intact"
        ) from error
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def _advice(error: OSError) -> str:
    if error.errno in FULL_DISK_ERRORS:
        return "free disk space or choose another --run-dir"
    return "check its permissions or choose another --run-dir"


def save_weights(model: nn.Module, path: Path) -> None:
    """The model's parameters and buffers as safetensors (tied weights stored once).

    The file is serialized in memory and written by Python, so a full disk is an OSError (a CheckpointError
    here) rather than whatever the safetensors library raises.
    """
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    seen: dict[int, str] = {}
    for name in list(state):
        pointer = state[name].data_ptr()
        if pointer in seen and state[name].numel():
            del state[name]
        else:
            seen[pointer] = name
    data = serialize_weights(state)
    atomic_write(path, lambda temporary: temporary.write_bytes(data))


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model``; a missing, truncated or foreign file is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run has no saved weights yet (train it first)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is damaged or not a safetensors file ({error}); retrain or restore it"
        ) from error
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{path} does not fit this model ({first_line}); it belongs to another configuration"
        ) from error
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - set(
        name for name, _ in model.named_parameters()
    )
    missing = [name for name in result.missing_keys if name not in tied]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not fit this model (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}); "
            "it belongs to another architecture or configuration"
        )


def write_run_files(run_dir: Path, config: RunConfig, tokenizer: Tokenizer) -> None:
    """The files that do not change during training: ``config.json`` and ``tokenizer.model``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / CONFIG_FILE, lambda temporary: temporary.write_text(config.to_json(), encoding="utf-8"))
    atomic_write(run_dir / TOKENIZER_FILE, lambda temporary: temporary.write_bytes(tokenizer.to_bytes()))


def load_run(run_dir: Path, *, device: torch.device | str = "cpu") -> LoadedRun:
    """Rebuild a run's model from its own ``config.json`` and load its weights and tokenizer."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"checkpoint folder {run_dir} does not exist; pass --checkpoint with a run folder")
    try:
        config = RunConfig.load(run_dir / CONFIG_FILE)
    except ConfigError as error:
        raise CheckpointError(str(error)) from error
    tokenizer_path = run_dir / TOKENIZER_FILE
    if not tokenizer_path.is_file():
        raise CheckpointError(f"{tokenizer_path} is missing; the run folder is incomplete")
    try:
        tokenizer = Tokenizer.load(tokenizer_path)
    except TokenizerError as error:
        raise CheckpointError(f"{tokenizer_path}: {error}") from error
    model = build_model(config.model, tokenizer.vocab_size)
    load_weights(model, run_dir / WEIGHTS_FILE)
    return LoadedRun(run_dir, config, model.to(device).eval(), tokenizer)


def latest_run(root: Path = Path("checkpoints")) -> Path:
    """The most recently modified run folder (one holding ``model.safetensors``) under ``root``."""
    runs = [weights.parent for weights in Path(root).glob(f"*/{WEIGHTS_FILE}")]
    if not runs:
        raise CheckpointError(f"no trained run under {root}/; train one with `sandglass train` or pass --checkpoint")
    return max(runs, key=lambda run: (run / WEIGHTS_FILE).stat().st_mtime)
