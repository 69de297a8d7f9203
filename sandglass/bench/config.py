"""What a benchmark run trains and measures: :class:`BenchConfig`, one source of the bench defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sandglass.config import ConfigError, preset
from sandglass.precision import uses_bfloat16

DEFAULT_DATA_DIR = Path("../shared/data/multi30k")
TEST_SET = "test_2016_flickr"
DECODE_PRECISIONS = ("auto", "float32", "bfloat16", "both")


@dataclass(frozen=True)
class Direction:
    """A translation direction, ``src`` → ``tgt``, by language code."""

    src: str = "de"
    tgt: str = "en"

    @property
    def name(self) -> str:
        return f"{self.src}-{self.tgt}"

    def reversed(self) -> Direction:
        return Direction(self.tgt, self.src)


@dataclass(frozen=True)
class BenchConfig:
    """SandGlass against the Transformer reference on Multi30k, same data, tokenizer and time budget.

    Each model of each direction trains for ``budget`` seconds of wall clock (validation included, as the
    trainer counts it) with its preset's optimization settings; ``validate_every`` (steps) overrides the
    presets' when set. Decoding speed is the median of ``speed_runs`` timed passes after one warm-up batch, over
    the whole test set for ``batch_size`` and over its first ``single_sentences`` sentences at batch 1.
    ``ctc_beam`` 0 skips the CTC prefix beam search; ``distill`` adds a SandGlass trained on the Transformer's
    beam translations of the training source. ``decode_precision`` is what every model is scored and timed in:
    ``float32``, ``bfloat16`` (autocast), ``both``, or ``auto``: both where the device multiplies bf16 natively
    (AMX or AVX512-BF16 CPUs, GPUs), float32 alone elsewhere. Training and decoding run on ``device`` with
    ``threads`` CPU threads. The shared tokenizer is trained once and cached in ``data_cache``.
    """

    data_dir: Path = DEFAULT_DATA_DIR
    directions: tuple[Direction, ...] = (Direction(),)
    budget: float = 1800.0
    sandglass_preset: str = "base"
    transformer_preset: str = "transformer-base"
    distill: bool = False
    beam: int = 5
    ctc_beam: int = 5
    decode_precision: str = "auto"
    threads: int = 2
    vocab_size: int = 8000
    batch_size: int = 64
    single_sentences: int = 100
    speed_runs: int = 3
    validate_every: int | None = None
    log_every: int = 10
    seed: int = 1
    device: str = "cpu"
    output_dir: Path = field(default_factory=lambda: Path("checkpoints/bench"))
    data_cache: Path = field(default_factory=lambda: Path("data"))

    def __post_init__(self) -> None:
        if not self.budget > 0:
            raise ConfigError(f"the budget must be above zero seconds, got {self.budget!r}")
        for name in ("beam", "threads", "vocab_size", "batch_size", "single_sentences", "speed_runs", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"bench {name} must be a positive integer, got {value!r}")
        if self.ctc_beam < 0:
            raise ConfigError(f"bench ctc_beam must be 0 (skip) or a beam size, got {self.ctc_beam!r}")
        if self.decode_precision not in DECODE_PRECISIONS:
            raise ConfigError(
                f"bench decode_precision must be one of {', '.join(DECODE_PRECISIONS)}, got {self.decode_precision!r}"
            )
        if self.validate_every is not None and self.validate_every < 1:
            raise ConfigError(f"bench validate_every must be a positive number of steps, got {self.validate_every!r}")
        if not self.directions:
            raise ConfigError("the bench needs at least one direction")
        for direction in self.directions:
            if direction.src == direction.tgt:
                raise ConfigError(f"source and target language are both {direction.src!r}; choose two languages")
        for name, arch in (("sandglass_preset", "sandglass"), ("transformer_preset", "transformer")):
            chosen = preset(getattr(self, name)).model.arch
            if chosen != arch:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is a {chosen} model, not {arch}")

    def decode_precisions(self) -> tuple[str, ...]:
        """The precisions every model is decoded in, float32 first."""
        if self.decode_precision == "both":
            return ("float32", "bfloat16")
        if self.decode_precision == "auto":
            native = uses_bfloat16(torch.device(self.device), "auto")
            return ("float32", "bfloat16") if native else ("float32",)
        return (self.decode_precision,)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (paths as strings, directions as a list)."""
        raw = dataclasses.asdict(self)
        paths = {name: str(getattr(self, name)) for name in ("data_dir", "output_dir", "data_cache")}
        return raw | paths | {"directions": [dataclasses.asdict(direction) for direction in self.directions]}
