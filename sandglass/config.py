"""Typed configuration: one dataclass per concern, presets as a literal table, saved as JSON in every run.

A run's ``config.json`` holds a :class:`RunConfig`; it is enough to rebuild the model of a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CONFIG_VERSION = 1

Arch = Literal["sandglass", "transformer", "original"]
ARCHS: tuple[str, ...] = ("sandglass", "transformer", "original")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which field and what to do.

    ``field`` names the offending setting when it is one field, so a front end can say which option sets it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class SandGlassConfig:
    """The non-autoregressive SandGlass translator (DESIGN.md §4).

    ``encoder`` has one block-type letter per encoder stage, each stage ending in a reduce by ``reduce_factor``;
    ``center`` and ``output`` list the block types on the reduced sequence and after upsampling. Letters:
    C conv, R reverse conv, M MBConv, A augmented conv, W kernel-weighted conv, G FC-generated-kernel conv,
    D dot-product-kernel conv, T relative-attention transformer block. ``dropout`` applies to the embeddings,
    the blocks' outputs and attention weights; ``activation_dropout`` to the T blocks' feed-forward hidden
    activations (``None``: the same as ``dropout``). ``blank_gate`` gives the CTC blank a sigmoid gate of its own,
    ``p(blank) = σ(g·h + c)`` and ``p(v) = (1 − σ) · softmax(W h)_v``, so that greedy decoding projects only the
    frames where ``σ < ½`` onto the vocabulary.
    """

    arch: Literal["sandglass"] = "sandglass"
    d_model: int = 256
    encoder: str = "C-C"
    blocks_per_stage: int = 2
    center: str = "T-T"
    output: str = "T"
    reduce: Literal["conv", "attention"] = "conv"
    reduce_factor: int = 2
    upsample: int = 2
    kernel_size: int = 3
    num_heads: int = 4
    ffn_ratio: int = 4
    max_distance: int = 64
    mirror_key_dim: int = 64
    dropout: float = 0.1
    activation_dropout: float | None = None
    blank_gate: bool = False
    max_length: int = 256


@dataclass
class TransformerConfig:
    """The autoregressive pre-norm Transformer reference."""

    arch: Literal["transformer"] = "transformer"
    d_model: int = 256
    num_heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    ffn_dim: int = 1024
    dropout: float = 0.1
    label_smoothing: float = 0.1
    max_length: int = 256


@dataclass
class OriginalConfig:
    """The 2018 SandGlass as its author built it: fixed length, tanh, batch norm, a fully connected center."""

    arch: Literal["original"] = "original"
    sequence_length: int = 24
    d_model: int = 128
    kernel_sizes: tuple[int, ...] = (4, 1)
    reduce_factors: tuple[int, ...] = (2, 2)
    key_channels: int = 32
    center_hidden: int = 512


ModelConfig = SandGlassConfig | TransformerConfig | OriginalConfig
MODEL_CONFIGS: dict[str, type] = {
    "sandglass": SandGlassConfig,
    "transformer": TransformerConfig,
    "original": OriginalConfig,
}


@dataclass
class DataConfig:
    """Where the text comes from and how it is cut into tokens and batches.

    ``train_size`` to ``max_symbols`` shape the synthetic tasks (``reverse``, ``copy``, ``sort``): how many
    training and validation/test pairs, how many distinct symbols, and how many symbols a sequence has.
    """

    dataset: str = "multi30k"
    src: str = "de"
    tgt: str = "en"
    data_dir: str | None = None
    task: Literal["translate", "reconstruct"] = "translate"
    vocab_size: int = 8000
    max_length: int = 100
    encoding_errors: Literal["strict", "replace"] = "strict"
    train_size: int = 10_000
    eval_size: int = 500
    symbols: int = 60
    min_symbols: int = 1
    max_symbols: int = 23


@dataclass
class TrainConfig:
    """Optimization, schedule, stopping and checkpointing.

    ``precision``: ``bfloat16`` runs the forward pass under bf16 autocast (weights, optimizer state and the
    losses stay float32); ``auto`` picks it on CUDA and on CPUs with bf16 matrix units (AMX or AVX512-BF16),
    where it is faster, and float32 elsewhere, where bf16 would be emulated.
    """

    max_tokens: int = 4096
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    schedule: Literal["inverse_sqrt", "cosine", "constant"] = "inverse_sqrt"
    clip_norm: float = 1.0
    max_steps: int | None = None
    max_epochs: int | None = None
    max_time: float | None = None
    log_every: int = 50
    validate_every: int = 500
    checkpoint_every: int = 500
    patience: int | None = 10
    max_nonfinite: int = 5
    seed: int = 1
    device: str = "auto"
    precision: Literal["auto", "float32", "bfloat16"] = "auto"


@dataclass
class RunConfig:
    """Everything a run needs, and what ``config.json`` in its folder holds."""

    model: ModelConfig = field(default_factory=SandGlassConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        version = raw.get("version")
        if version != CONFIG_VERSION:
            raise ConfigError(
                f"config version {version!r} is not supported by this sandglass (expects {CONFIG_VERSION}); "
                "retrain or use the sandglass version that wrote it"
            )
        model_raw = dict(raw.get("model", {}))
        arch = model_raw.get("arch", "sandglass")
        if arch not in MODEL_CONFIGS:
            raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
        return cls(
            model=_build(MODEL_CONFIGS[arch], model_raw, "model"),
            data=_build(DataConfig, raw.get("data", {}), "data"),
            train=_build(TrainConfig, raw.get("train", {}), "train"),
        )

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigError(f"{path} does not exist; is this a sandglass run folder?") from error
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not valid JSON ({error}); the run folder is damaged") from error
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} does not hold a JSON object; the run folder is damaged")
        return cls.from_dict(raw)


def _build(kind: type, raw: dict[str, Any], section: str) -> Any:
    """Build dataclass ``kind`` from ``raw``, turning JSON lists back into tuples and rejecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {section} setting(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    values = {}
    for name, value in raw.items():
        default = getattr(kind(), name)
        values[name] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
    return kind(**values)


@dataclass(frozen=True)
class Preset:
    """A named model configuration and the training settings it is meant to be trained with."""

    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        SandGlassConfig(
            d_model=64,
            encoder="C",
            blocks_per_stage=1,
            center="T",
            output="T",
            num_heads=2,
            mirror_key_dim=16,
            max_distance=32,
            dropout=0.0,
        ),
        TrainConfig(max_tokens=2048, lr=3e-3, warmup_steps=100, validate_every=200, checkpoint_every=200),
    ),
    # A short warmup: on 2 CPU cores a 30-minute run makes one to two thousand updates. No dropout on the T
    # blocks' feed-forward hidden activations: their masks were the largest non-product cost of a step, and
    # without them training runs 1.58× the Transformer's target tokens/s at 34.2 BLEU (benchmarks/RESULTS.md).
    "base": Preset(SandGlassConfig(activation_dropout=0.0), TrainConfig(warmup_steps=300)),
    "big": Preset(
        SandGlassConfig(
            d_model=512,
            encoder="C-C",
            blocks_per_stage=3,
            center="T-T-T-T",
            output="T-T",
            num_heads=8,
            mirror_key_dim=128,
            dropout=0.2,
        ),
        TrainConfig(max_tokens=8192, lr=7e-4, warmup_steps=4000),
    ),
    "original": Preset(
        OriginalConfig(),
        TrainConfig(
            max_tokens=2048,
            lr=7e-4,
            betas=(0.9, 0.999),
            weight_decay=0.0,
            warmup_steps=0,
            schedule="constant",
            clip_norm=1.0,
        ),
    ),
    "transformer-tiny": Preset(
        TransformerConfig(d_model=64, num_heads=2, encoder_layers=1, decoder_layers=1, ffn_dim=128, dropout=0.0),
        TrainConfig(max_tokens=2048, lr=3e-3, warmup_steps=100, validate_every=200, checkpoint_every=200),
    ),
    "transformer-base": Preset(TransformerConfig(), TrainConfig(warmup_steps=300)),
    "transformer-big": Preset(
        TransformerConfig(d_model=512, num_heads=8, encoder_layers=6, decoder_layers=6, ffn_dim=2048, dropout=0.2),
        TrainConfig(max_tokens=8192, lr=7e-4, warmup_steps=4000),
    ),
}


def preset(name: str) -> Preset:
    """A fresh copy of the named preset (its model and training configuration)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[name]
    return Preset(dataclasses.replace(chosen.model), dataclasses.replace(chosen.train))


# Numbers that may be zero; every other number in a configuration must be above zero.
ZERO_ALLOWED = frozenset(
    {"warmup_steps", "weight_decay", "dropout", "activation_dropout", "label_smoothing", "seed", "max_nonfinite"}
)
BELOW_ONE = frozenset({"dropout", "activation_dropout", "label_smoothing"})
MIN_VOCAB_SIZE = 5  # the four special pieces and at least one real one
LANGUAGE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_config(config: RunConfig) -> None:
    """Raise ConfigError naming the first setting of the wrong type or out of range."""
    for section in ("model", "data", "train"):
        part = getattr(config, section)
        hints = typing.get_type_hints(type(part))
        for setting in dataclasses.fields(part):
            value = getattr(part, setting.name)
            problem = _type_problem(value, hints[setting.name]) or _range_problem(setting.name, value)
            if problem:
                raise ConfigError(f"[{section}] {setting.name} {problem}, got {value!r}", field=setting.name)
    for name in ("src", "tgt"):
        code = getattr(config.data, name)
        if not LANGUAGE.fullmatch(code):
            raise ConfigError(f"unknown language {code!r} for --{name}; use a language code such as de or en")
    if config.data.min_symbols > config.data.max_symbols:
        raise ConfigError(
            f"[data] min_symbols ({config.data.min_symbols}) is above max_symbols ({config.data.max_symbols}); "
            "lower min_symbols or raise max_symbols",
            field="min_symbols",
        )
    if not DEVICE.fullmatch(config.train.device):
        raise ConfigError(f"unknown device {config.train.device!r}; use auto, cpu, cuda, cuda:N or mps")


def _type_problem(value: Any, hint: Any) -> str | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return None if value in args else f"must be one of {', '.join(map(str, args))}"
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(value, option) for option in args]
        return None if None in problems else problems[0]
    if origin is tuple:
        if not isinstance(value, tuple):
            return "must be a list of numbers"
        element = args[0]
        if args[-1] is not Ellipsis and len(value) != len(args):
            return f"must be a list of {len(args)} numbers"
        return next((problem for item in value if (problem := _type_problem(item, element))), None)
    if hint is type(None):
        return None if value is None else "must be unset"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    return None


def _range_problem(name: str, value: Any) -> str | None:
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(number, (int, float)) and not isinstance(number, bool) for number in numbers):
        return None
    if name == "vocab_size" and value < MIN_VOCAB_SIZE:
        return f"must be at least {MIN_VOCAB_SIZE} (4 special pieces and 1 real one)"
    if name in BELOW_ONE and not all(0 <= number < 1 for number in numbers):
        return "must be in [0, 1)"
    if name == "betas" and not all(0 <= number < 1 for number in numbers):
        return "must be in [0, 1)"
    if name in ZERO_ALLOWED:
        return None if all(number >= 0 for number in numbers) else "must not be negative"
    return None if all(number > 0 for number in numbers) else "must be above zero"
