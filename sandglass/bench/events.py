"""What a benchmark reports while it runs: typed events and the callbacks that receive them (the CLI renders)."""

from __future__ import annotations

from dataclasses import dataclass

from sandglass.bench.results import DecodingSpeed
from sandglass.training import TrainingCallbacks


@dataclass(frozen=True)
class StageStarted:
    """``stage`` (``train``, ``distill`` or ``evaluate``) of ``model`` in ``direction`` (e.g. ``de-en``) begins;
    ``detail`` says what it does, in words."""

    direction: str
    model: str
    stage: str
    detail: str


@dataclass(frozen=True)
class DecodingMeasured:
    """A decoding method of a model, in ``precision``, was scored on the test set and timed at each batch size."""

    direction: str
    model: str
    method: str
    bleu: float
    speeds: list[DecodingSpeed]
    precision: str = "float32"


class BenchCallbacks:
    """Receives benchmark progress; every method does nothing by default."""

    def stage_started(self, event: StageStarted) -> None:
        pass

    def training_callbacks(self) -> TrainingCallbacks:
        """Where the events of each model's training go."""
        return TrainingCallbacks()

    def teacher_progress(self, sentences: int) -> None:
        """``sentences`` more training sources were translated by the distillation teacher."""

    def decoding_measured(self, event: DecodingMeasured) -> None:
        pass
