"""Bench results made up for the report tests (no training)."""

from __future__ import annotations

from sandglass.bench.results import (
    BenchResult,
    Comparison,
    CurvePoint,
    DecodingResult,
    DecodingSpeed,
    DirectionResult,
    Machine,
    ModelResult,
    TrainingFigures,
)
from sandglass.metrics import score_corpus

MACHINE = Machine(2, 2, "test CPU", "Linux", "3.11", "2.13.0", 2, "cpu", "float32")


def made_up_model(name: str, rate: float | None, bleu_shift: int = 0) -> ModelResult:
    scores = score_corpus(["a small dog runs"] * 2, ["a small dog runs", f"a big dog sits {bleu_shift}"])
    speeds = [DecodingSpeed(1, 4, [0.5, 0.4, 0.6], 8.0), DecodingSpeed(64, 10, [0.2], 50.0)]
    training = TrainingFigures(60.0, 100, 2, "max_time", 12.5, rate, None, [CurvePoint(30.0, 50, 10.0)])
    bf16_speeds = [DecodingSpeed(1, 4, [0.25], 16.0), DecodingSpeed(64, 10, [0.1], 100.0)]
    decoding = [
        DecodingResult("greedy", 1, scores, speeds),
        DecodingResult("greedy", 1, scores, bf16_speeds, "bfloat16"),
    ]
    return ModelResult(name, "base", f"runs/{name}", 1000, training, decoding)


def made_up_direction(src: str, tgt: str) -> DirectionResult:
    models = [made_up_model("transformer", 1000.0), made_up_model("sandglass", None)]
    comparisons = [
        Comparison("sandglass", "transformer", 10.0, 5.0, None, 1.5, -2.0),
        Comparison("sandglass", "transformer", 12.0, 6.0, None, 1.5, -2.5, "bfloat16"),
    ]
    return DirectionResult(src, tgt, "test_2016_flickr", 10, 100, 500, models, comparisons)


def made_up_result(*directions: tuple[str, str], date: str = "2026-01-01T00:00:00", budget: float = 60.0):
    return BenchResult(
        date=date,
        command=f"sandglass bench {date}",
        budget_seconds=budget,
        machine=MACHINE,
        settings={"batch_size": 64, "speed_runs": 3, "single_sentences": 4, "log_every": 10},
        directions=[made_up_direction(src, tgt) for src, tgt in directions],
    )
