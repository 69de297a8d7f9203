"""Untrained run folders for tests: a word tokenizer for the synthetic tasks and a randomly initialized model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from typer.testing import CliRunner

from sandglass.checkpoint import WEIGHTS_FILE, save_weights, write_run_files
from sandglass.cli import app
from sandglass.config import DataConfig, RunConfig, preset
from sandglass.data.synthetic import synthetic_corpus
from sandglass.models.build import build_model
from sandglass.tokenizer import Tokenizer


def make_run(run_dir: Path, *, preset_name: str = "transformer-tiny", seed: int = 0, **model_settings) -> Path:
    """A run folder of the preset's model (with ``model_settings`` changed) with random weights."""
    corpus = synthetic_corpus("reverse", 200, seed=seed)
    tokenizer = Tokenizer.train(corpus.source + corpus.target, vocab_size=100, model_type="word")
    model_config = dataclasses.replace(preset(preset_name).model, **model_settings)
    config = RunConfig(model=model_config, data=DataConfig(dataset="reverse", vocab_size=100))
    torch.manual_seed(seed)
    model = build_model(config.model, tokenizer.vocab_size)
    write_run_files(run_dir, config, tokenizer)
    save_weights(model, run_dir / WEIGHTS_FILE)
    return run_dir


def run_cli(*args: str, input: str | None = None):
    """``sandglass ARGS`` in this process; the result has ``exit_code``, ``stdout`` and ``stderr``."""
    return CliRunner().invoke(app, list(args), input=input, prog_name="sandglass")
