"""What training reports: typed progress events, the callbacks that receive them, the result and the errors.

The library never prints; a front end (the CLI renders them with rich) subclasses :class:`TrainingCallbacks`
and overrides the methods it cares about. Only rank 0 of a distributed run reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainingStarted:
    """Everything is loaded; ``resumed_from_step`` is 0 for a fresh run."""

    run_dir: Path
    parameters: int
    device: str
    train_pairs: int
    valid_pairs: int
    resumed_from_step: int
    bfloat16: bool = False


@dataclass(frozen=True)
class StepLogged:
    """Averages over the steps since the previous log; ``epoch`` counts from 1, ``eta_seconds`` is None when no
    step, epoch or time limit is set. ``tokens_per_second`` counts source and target tokens,
    ``target_tokens_per_second`` the target tokens alone."""

    step: int
    epoch: int
    loss: float
    tokens_per_second: float
    learning_rate: float
    elapsed: float
    eta_seconds: float | None
    target_tokens_per_second: float = 0.0


@dataclass(frozen=True)
class Validated:
    """Per-token validation NLL, sacreBLEU and exact match (0–100); ``is_best`` when BLEU improved."""

    step: int
    loss: float
    bleu: float
    exact_match: float
    is_best: bool


@dataclass(frozen=True)
class CheckpointSaved:
    """The resume state for ``step`` is on disk (``path``: the trainer state file)."""

    path: Path
    step: int


@dataclass(frozen=True)
class StepSkipped:
    """A batch whose loss or gradient was not finite; no optimizer update was made."""

    step: int
    reason: str


class TrainingCallbacks:
    """Receives training progress, one method per event; every method does nothing by default."""

    def training_started(self, event: TrainingStarted) -> None:
        pass

    def step_logged(self, event: StepLogged) -> None:
        pass

    def validated(self, event: Validated) -> None:
        pass

    def checkpoint_saved(self, event: CheckpointSaved) -> None:
        pass

    def step_skipped(self, event: StepSkipped) -> None:
        pass

    def training_finished(self, result: TrainingResult) -> None:
        pass


@dataclass(frozen=True)
class TrainingResult:
    """How a finished run ended. ``stopped_because`` is ``"max_steps"``, ``"max_epochs"``, ``"max_time"`` or
    ``"early_stopping"``; ``best_bleu`` is None when no validation ran; ``elapsed`` counts resumed time too."""

    run_dir: Path
    steps: int
    epochs: int
    best_bleu: float | None
    stopped_because: str
    elapsed: float


class TrainingStopped(RuntimeError):  # noqa: N818 (the name the CLI and issues use)
    """Training could not go on (e.g. too many non-finite losses in a row); the last checkpoint is intact."""


class TrainingInterrupted(RuntimeError):  # noqa: N818
    """SIGINT or SIGTERM arrived; a checkpoint was saved first, so ``--resume`` continues the run."""

    def __init__(self, checkpoint_path: Path, signal_name: str) -> None:
        super().__init__(f"training interrupted by {signal_name}; checkpoint saved in {checkpoint_path}")
        self.checkpoint_path = checkpoint_path
        self.signal_name = signal_name
