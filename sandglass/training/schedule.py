"""Learning-rate schedules: linear warmup, then inverse square root, cosine or constant."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from sandglass.config import ConfigError

SCHEDULES = ("inverse_sqrt", "cosine", "constant")


def learning_rate_factor(update: int, *, schedule: str, warmup_steps: int, total_steps: int | None = None) -> float:
    """The multiplier of the base learning rate for optimizer update number ``update`` (counting from 1).

    Warmup: ``n / W`` for ``n < W``. Then ``√(W / n)`` (inverse_sqrt), ``½(1 + cos(π·(n-W)/(N-W)))``
    (cosine, reaching 0 at ``N = total_steps``) or 1 (constant).
    """
    if update < warmup_steps:
        return update / warmup_steps
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup_steps, 1) / update)
    if schedule == "cosine":
        if total_steps is None:
            raise ConfigError("the cosine schedule needs max_steps or max_epochs to know where it ends")
        progress = min(1.0, (update - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "constant":
        return 1.0
    raise ConfigError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def build_scheduler(
    optimizer: Optimizer, *, schedule: str, warmup_steps: int, total_steps: int | None = None
) -> LambdaLR:
    """A scheduler to ``step()`` after every optimizer update (its state holds no function, only numbers)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup_steps < 0:
        raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if schedule == "cosine" and total_steps is None:
        raise ConfigError("the cosine schedule needs max_steps or max_epochs to know where it ends")

    def factor(updates_done: int) -> float:
        return learning_rate_factor(
            updates_done + 1, schedule=schedule, warmup_steps=warmup_steps, total_steps=total_steps
        )

    return LambdaLR(optimizer, factor)
