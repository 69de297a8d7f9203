"""What the training loop is built from: checked settings, the run folder, seeds, the optimizer and the objective."""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sandglass.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from sandglass.config import ConfigError, RunConfig, TrainConfig
from sandglass.data.batching import Batch
from sandglass.objective import compute_loss
from sandglass.training.state import has_resume_state, remove_stale_temporaries


def check_train_config(settings: TrainConfig) -> None:
    """Raise ConfigError naming the first training setting that cannot be used."""
    for name in ("max_tokens", "log_every", "validate_every", "checkpoint_every", "max_nonfinite"):
        value = getattr(settings, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
    for name in ("max_steps", "max_epochs", "patience"):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ConfigError(f"train.{name} must be a non-negative integer or None, got {value!r}")
    if settings.max_time is not None and settings.max_time < 0:
        raise ConfigError(f"train.max_time must be >= 0 seconds or None, got {settings.max_time!r}")
    if not settings.lr > 0:
        raise ConfigError(f"train.lr must be positive, got {settings.lr!r}")
    if not all(0.0 <= beta < 1.0 for beta in settings.betas) or len(settings.betas) != 2:
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {settings.betas!r}")


def check_run_dir(run_dir: Path, config: RunConfig, *, resume: bool) -> None:
    """A fresh run must not overwrite a resumable one; a resumed one must exist and use the same model and data.

    Also removes the temporary files a killed checkpoint write left, and for a fresh run the weights of a run
    killed before its first checkpoint.
    """
    if resume:
        if not has_resume_state(run_dir):
            raise CheckpointError(f"{run_dir} holds no resume checkpoint; train without --resume to start it")
        try:
            saved = RunConfig.load(run_dir / CONFIG_FILE)
        except ConfigError as error:
            raise CheckpointError(str(error)) from None
        for section in ("model", "data"):
            if getattr(saved, section) != getattr(config, section):
                raise CheckpointError(
                    f"the {section} settings differ from those of the run in {run_dir}; resume with the run's "
                    f"own {CONFIG_FILE} (only training settings may change)"
                )
    elif has_resume_state(run_dir):
        raise CheckpointError(
            f"{run_dir} already holds a training run; pass --resume to continue it or choose another --run-dir"
        )
    if not run_dir.is_dir():
        return
    remove_stale_temporaries(run_dir)
    if not resume:  # weights of a run killed before its first checkpoint would not match the new config
        for stale in [run_dir / WEIGHTS_FILE, *run_dir.glob("last-*.safetensors")]:
            stale.unlink(missing_ok=True)


def epoch_seed(seed: int, epoch: int) -> int:
    """The batch-order seed of an epoch: distinct for every (seed, epoch) pair, the same on every platform."""
    digest = hashlib.sha256(f"sandglass-epoch:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Treat denormal floats as zero on the CPU while training, then go back to the default.

    The softmax over a large vocabulary gives probabilities below 1e-38 to unlikely tokens, and their
    gradients reach the output projection's matmuls, which run ~100x slower on denormal inputs: a SandGlass
    step with an 8k vocabulary took 6.1 s instead of 1.8 s.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, settings: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (not on biases and norm gains)."""
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": settings.weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=tuple(settings.betas))


class Objective(nn.Module):
    """The model with its training loss as ``forward``, so DistributedDataParallel can wrap the whole step.

    Shape:
        src: (B, S), src_mask: (B, S), tgt: (B, T), tgt_mask: (B, T) → loss ()
    """

    def __init__(self, model: nn.Module, *, label_smoothing: float) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt: torch.Tensor, tgt_mask: torch.Tensor
    ) -> torch.Tensor:
        batch = Batch(src, src_mask, tgt, tgt_mask, torch.empty(0, dtype=torch.long))
        return compute_loss(self.model, batch, label_smoothing=self.label_smoothing).loss
