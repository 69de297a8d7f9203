"""Tiny training runs for the tests: the copy task, small presets, and a shared tokenizer cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file

from sandglass.config import DataConfig, RunConfig, TrainConfig, preset
from sandglass.data.corpus import DataSplits
from sandglass.data.loading import load_splits
from sandglass.training.state import read_resume_state

SPLITS: DataSplits = load_splits("copy", train_size=200, eval_size=20)


def run_config(arch: str = "transformer-tiny", *, dropout: float | None = None, **train: object) -> RunConfig:
    """A few-second CPU run on the copy task; ``train`` overrides the training settings."""
    model = preset(arch).model
    if dropout is not None:
        model = dataclasses.replace(model, dropout=dropout)
    settings = dict(
        max_tokens=256,
        lr=3e-3,
        warmup_steps=4,
        max_steps=6,
        log_every=1,
        validate_every=1000,
        checkpoint_every=1000,
        patience=None,
        device="cpu",
    )
    settings.update(train)
    return RunConfig(
        model=model,
        data=DataConfig(dataset="copy", vocab_size=100, max_length=12),
        train=TrainConfig(**settings),
    )


def with_train(config: RunConfig, **train: object) -> RunConfig:
    """The same run with some training settings changed (what a resume may change)."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train))


def resume_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights the run's resume checkpoint points at."""
    return load_file(str(run_dir / read_resume_state(run_dir)["weights_file"]))


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=1e-6, msg=name)
