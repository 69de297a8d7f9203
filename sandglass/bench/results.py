"""What a benchmark measures, as typed results that ``bench.json`` holds and can be read back from."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandglass.metrics import CorpusScores

RESULT_VERSION = 1
TRANSFORMER, SANDGLASS, DISTILLED = "transformer", "sandglass", "sandglass-distilled"


@dataclass(frozen=True)
class DecodingSpeed:
    """Sentences per second at ``batch_size``: ``sentences`` translated in each of the timed ``runs`` (seconds,
    model load and warm-up excluded), rated by their median."""

    batch_size: int
    sentences: int
    runs: list[float]
    sentences_per_second: float


@dataclass(frozen=True)
class DecodingResult:
    """One decoding method of a model in one precision: ``greedy`` / ``beam5`` (Transformer), ``ctc-greedy`` /
    ``ctc-beam5`` (SandGlass), in ``float32`` or ``bfloat16`` (autocast); its test scores and its speed at each
    batch size."""

    method: str
    beam_size: int
    scores: CorpusScores
    speeds: list[DecodingSpeed]
    precision: str = "float32"  # bench.json files written before bf16 decoding was measured lack it

    def speed_at(self, batch_size: int) -> DecodingSpeed | None:
        return next((speed for speed in self.speeds if speed.batch_size == batch_size), None)


@dataclass(frozen=True)
class CurvePoint:
    """A validation during training: ``seconds`` of training wall clock when it finished, its step and BLEU."""

    seconds: float
    step: int
    bleu: float


@dataclass(frozen=True)
class TrainingFigures:
    """How a model trained: wall clock, updates, why it stopped, the best validation BLEU (the kept weights),
    median target tokens per second over the progress windows, the training process' peak resident memory
    (interpreter and libraries included), and the validation curve."""

    seconds: float
    steps: int
    epochs: int
    stopped_because: str
    best_valid_bleu: float | None
    target_tokens_per_second: float | None
    peak_rss_mib: float | None
    curve: list[CurvePoint]


@dataclass(frozen=True)
class TeacherCost:
    """What distillation cost before the student trained: the teacher's beam translation of the training
    source (``seconds`` of wall clock for ``sentences`` sentences)."""

    run_dir: str
    beam_size: int
    sentences: int
    seconds: float


@dataclass(frozen=True)
class ModelResult:
    """One trained model of a direction: ``name`` is transformer, sandglass or sandglass-distilled."""

    name: str
    preset: str
    run_dir: str
    parameters: int
    training: TrainingFigures
    decoding: list[DecodingResult]
    teacher: TeacherCost | None = None

    def greedy(self, precision: str = "float32") -> DecodingResult | None:
        """The greedy decoding (beam 1) in ``precision``, when it was measured."""
        return next((d for d in self.decoding if d.beam_size == 1 and d.precision == precision), None)


@dataclass(frozen=True)
class Comparison:
    """A SandGlass model over the Transformer, both decoding in ``precision``: greedy sentences/s ratios at
    batch 1 and the large batch, training target tokens/s ratio, parameter ratio and greedy test BLEU difference
    (None when unmeasured)."""

    model: str
    versus: str
    greedy_speedup_batch_1: float | None
    greedy_speedup_batch_large: float | None
    training_speed_ratio: float | None
    parameter_ratio: float
    bleu_difference: float
    precision: str = "float32"


@dataclass(frozen=True)
class DirectionResult:
    """Every model of one direction on the same data, tokenizer and test set."""

    src: str
    tgt: str
    test_set: str
    test_sentences: int
    train_pairs: int
    vocab_size: int
    models: list[ModelResult]
    comparisons: list[Comparison]

    def model(self, name: str) -> ModelResult | None:
        return next((model for model in self.models if model.name == name), None)


@dataclass(frozen=True)
class Machine:
    """Where the figures were taken."""

    cpu_count: int
    usable_cpus: int
    processor: str
    platform: str
    python: str
    torch: str
    threads: int
    device: str
    precision: str = "float32"  # bench.json files written before training used bf16 on CPUs lack it


@dataclass(frozen=True)
class BenchResult:
    """A whole benchmark: when, where, how it was started, its settings, and one result per direction."""

    date: str
    command: str
    budget_seconds: float
    machine: Machine
    settings: dict[str, Any]
    directions: list[DirectionResult]
    version: int = RESULT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BenchResult:
        if raw.get("version") != RESULT_VERSION:
            raise ValueError(f"bench result version {raw.get('version')!r} is not {RESULT_VERSION}")
        return _build(cls, raw)

    @classmethod
    def load(cls, path: Path) -> BenchResult:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _build(kind: Any, raw: Any) -> Any:
    """``raw`` (parsed JSON) as type ``kind``: dataclasses and lists of them rebuilt, other values kept."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if raw is None:
            return None
        return _build(next(arg for arg in args if arg is not type(None)), raw)
    if origin is list:
        return [_build(args[0], item) for item in raw]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        names = {field.name for field in dataclasses.fields(kind)}
        return kind(**{name: _build(hints[name], value) for name, value in raw.items() if name in names})
    return raw
