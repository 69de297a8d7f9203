"""The run's training history: ``metrics.jsonl`` (one JSON object per log or validation event) and its plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sandglass.checkpoint import CheckpointError, atomic_write

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"


class MetricsLog:
    """Appends events to a JSON-lines file; each record has an ``event`` name and the ``step`` it belongs to."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as error:
            raise CheckpointError(
                f"could not write {self.path} ({error.strerror or error}); free disk space or choose another --run-dir"
            ) from error

    def records(self) -> list[dict[str, Any]]:
        """The records written so far; a line cut short by a kill is skipped."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def keep_until(self, step: int) -> None:
        """Drop the records after ``step``: a resumed run repeats those steps and writes them again."""
        kept = [record for record in self.records() if record.get("step", 0) <= step]
        text = "".join(json.dumps(record) + "\n" for record in kept)
        atomic_write(self.path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def plot_training_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Training and validation loss, and validation BLEU, against the step, as a PNG (Agg, no display)."""
    steps = [record for record in records if record.get("event") == "step"]
    validations = [record for record in records if record.get("event") == "validation"]
    figure = Figure(figsize=(8, 6), tight_layout=True)
    FigureCanvasAgg(figure)
    loss_axes, bleu_axes = figure.subplots(2, 1, sharex=True)
    loss_axes.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="training loss")
    loss_axes.plot(
        [r["step"] for r in validations], [r["loss"] for r in validations], marker="o", label="validation loss"
    )
    loss_axes.set_ylabel("loss per token")
    loss_axes.legend()
    bleu_axes.plot([r["step"] for r in validations], [r["bleu"] for r in validations], marker="o", color="C2")
    bleu_axes.set_ylabel("validation BLEU")
    bleu_axes.set_xlabel("step")
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
