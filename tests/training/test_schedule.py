import math

import pytest
import torch

from sandglass.config import ConfigError
from sandglass.training.schedule import build_scheduler, learning_rate_factor


def expected_factor(n: int, schedule: str, warmup: int, total: int) -> float:
    """The schedule written out for update n (from 1)."""
    if n < warmup:
        return n / warmup
    if schedule == "inverse_sqrt":
        return (max(warmup, 1) / n) ** 0.5
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (n - warmup) / (total - warmup))))
    return 1.0


@pytest.mark.parametrize("schedule", ["inverse_sqrt", "cosine", "constant"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_the_scheduler_follows_the_schedule(schedule, warmup):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.5)
    scheduler = build_scheduler(optimizer, schedule=schedule, warmup_steps=warmup, total_steps=10)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.5 * expected_factor(n, schedule, warmup, 10) for n in range(1, 13)])


def test_cosine_ends_at_zero_and_warmup_peaks_at_one():
    assert learning_rate_factor(10, schedule="cosine", warmup_steps=2, total_steps=10) == pytest.approx(0.0)
    assert learning_rate_factor(2, schedule="inverse_sqrt", warmup_steps=2) == 1.0


def test_invalid_schedules_raise_config_errors():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="schedule 'linear'"):
        build_scheduler(optimizer, schedule="linear", warmup_steps=0)
    with pytest.raises(ConfigError, match="warmup_steps"):
        build_scheduler(optimizer, schedule="constant", warmup_steps=-1)
    with pytest.raises(ConfigError, match="cosine schedule needs"):
        build_scheduler(optimizer, schedule="cosine", warmup_steps=0)
