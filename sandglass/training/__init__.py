"""Training: the loop behind ``sandglass train``, its progress events, and exact resume."""

from sandglass.training.events import (
    CheckpointSaved,
    StepLogged,
    StepSkipped,
    TrainingCallbacks,
    TrainingInterrupted,
    TrainingResult,
    TrainingStarted,
    TrainingStopped,
    Validated,
)
from sandglass.training.launch import train, train_in_process_group

__all__ = [
    "CheckpointSaved",
    "StepLogged",
    "StepSkipped",
    "TrainingCallbacks",
    "TrainingInterrupted",
    "TrainingResult",
    "TrainingStarted",
    "TrainingStopped",
    "Validated",
    "train",
    "train_in_process_group",
]
