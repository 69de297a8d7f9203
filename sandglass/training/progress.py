"""The counters a run resumes from, and the running averages between two progress logs."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """Where training stands: ``step`` optimizer updates made, ``epoch`` epochs completed, ``batch_in_epoch``
    batches of the current epoch consumed (skipped ones included), validation and fault counts, and the
    training time of earlier sessions (``elapsed_before``)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_bleu: float | None = None
    bad_validations: int = 0
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0
    elapsed_before: float = 0.0

    def to_state(self, elapsed: float) -> dict[str, Any]:
        """The counters as trainer-state entries, with the total training time so far."""
        state = dataclasses.asdict(self)
        del state["elapsed_before"]
        return {**state, "elapsed": elapsed}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        names = [field.name for field in dataclasses.fields(cls) if field.name != "elapsed_before"]
        return cls(**{name: state[name] for name in names}, elapsed_before=float(state["elapsed"]))


class LogWindow:
    """Loss and token counts of the updates since the last progress log, and how long they took."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum = 0.0
        self.updates = 0
        self.tokens = 0
        self.target_tokens = 0
        self.started = time.monotonic()

    def add(self, loss: float, tokens: int, target_tokens: int = 0) -> None:
        self.loss_sum += loss
        self.updates += 1
        self.tokens += tokens
        self.target_tokens += target_tokens

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.updates, 1)

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.monotonic() - self.started, 1e-9)

    def target_tokens_per_second(self) -> float:
        return self.target_tokens / max(time.monotonic() - self.started, 1e-9)


def remaining_seconds(
    seconds_per_step: float | None,
    steps_left: int | None,
    batches_left: int | None,
    time_left: float | None,
) -> float | None:
    """The soonest of the limits that are set, at the current pace; None when none is set (or no pace yet)."""
    estimates = [] if time_left is None else [max(0.0, time_left)]
    if seconds_per_step is not None:
        estimates += [max(0, left) * seconds_per_step for left in (steps_left, batches_left) if left is not None]
    return min(estimates) if estimates else None
