"""Typed configuration: one dataclass per concern, presets as a literal table, saved as JSON in every run.

A run's ``config.json`` holds a :class:`RunConfig`; it is enough to rebuild the model of a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CONFIG_VERSION = 1

Arch = Literal["sandglass", "transformer", "original"]
ARCHS: tuple[str, ...] = ("sandglass", "transformer", "original")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which field and what to do."""


@dataclass
class SandGlassConfig:
    """The non-autoregressive SandGlass translator (DESIGN.md §4).

    ``encoder`` has one block-type letter per encoder stage, each stage ending in a reduce by ``reduce_factor``;
    ``center`` and ``output`` list the block types on the reduced sequence and after upsampling. Letters:
    C conv, R reverse conv, M MBConv, A augmented conv, W kernel-weighted conv, G FC-generated-kernel conv,
    D dot-product-kernel conv, T relative-attention transformer block.
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
    """Where the text comes from and how it is cut into tokens and batches."""

    dataset: str = "multi30k"
    src: str = "de"
    tgt: str = "en"
    data_dir: str | None = None
    task: Literal["translate", "reconstruct"] = "translate"
    vocab_size: int = 8000
    max_length: int = 100
    encoding_errors: Literal["strict", "replace"] = "strict"


@dataclass
class TrainConfig:
    """Optimization, schedule, stopping and checkpointing."""

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
    "base": Preset(SandGlassConfig()),
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
    "transformer-base": Preset(TransformerConfig()),
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
