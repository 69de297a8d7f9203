"""``sandglass summary``: the layer table of a preset, a configuration file or a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table
from torch import nn

from sandglass.checkpoint import load_run
from sandglass.cli.common import stdout_console
from sandglass.cli.errors import UsageError
from sandglass.cli.run_config import build_run_config, read_config_file
from sandglass.models.build import build_model, max_source_tokens
from sandglass.models.original import OriginalSandGlass
from sandglass.models.transformer import Transformer
from sandglass.summary import ModelSummary, summary

SUMMARY_HELP = (
    "Show a model's layers: name, type, output shape and parameters, with the totals.\n\n"
    "Give exactly one of --preset, --config or --checkpoint. The model runs once on one random sentence of "
    "--length tokens. Without a checkpoint the vocabulary has --vocab-size pieces (default: the configuration's)."
)
SUMMARY_EPILOG = "Example: sandglass summary --preset tiny --vocab-size 8000"
FIRST_REAL_TOKEN = 4  # ids 0-3 are pad, unk, bos, eos


def summary_command(
    preset: Annotated[
        str | None, typer.Option("--preset", help="A model preset, e.g. tiny or transformer-base.")
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="A TOML configuration file.")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="A trained run folder.")] = None,
    vocab_size: Annotated[int | None, typer.Option("--vocab-size", min=5, help="Vocabulary size.")] = None,
    length: Annotated[int, typer.Option("--length", min=1, help="Tokens in the example sentence.")] = 16,
) -> None:
    given = [
        name
        for name, value in (("--preset", preset), ("--config", config_file), ("--checkpoint", checkpoint))
        if value is not None
    ]
    if len(given) != 1:
        problem = "give one of" if not given else f"{' and '.join(given)} conflict; give only one of"
        raise UsageError(f"{problem} --preset, --config or --checkpoint")
    if checkpoint is not None:
        run = load_run(checkpoint)
        model, model_config, name = run.model, run.config.model, str(checkpoint)
    else:
        sections = read_config_file(config_file) if config_file is not None else {}
        config = build_run_config(file_sections=sections, preset_name=preset)
        model = build_model(config.model, vocab_size or config.data.vocab_size)
        model_config, name = config.model, preset or str(config_file)
    length = min(length, max_source_tokens(model_config))
    table = summary(model, example_inputs(model, length))
    stdout_console().print(render(table, f"{name} ({model_config.arch})"))


def example_inputs(model: nn.Module, length: int) -> tuple[torch.Tensor, ...]:
    """The positional arguments of ``model.forward`` for one random sentence of ``length`` tokens."""
    vocab_size = model_vocab_size(model)
    generator = torch.Generator().manual_seed(0)
    src = torch.randint(FIRST_REAL_TOKEN, vocab_size, (1, length), generator=generator)
    src_mask = torch.ones_like(src, dtype=torch.bool)
    if isinstance(model, Transformer):
        return src, src_mask, src
    if isinstance(model, OriginalSandGlass):
        return (src,)
    return src, src_mask


def model_vocab_size(model: nn.Module) -> int:
    embedding = next(module for module in model.modules() if isinstance(module, nn.Embedding))
    return embedding.num_embeddings


def render(table: ModelSummary, title: str) -> Table:
    rendered = Table(title=title, caption=_totals(table), caption_justify="left")
    rendered.add_column("layer", overflow="fold")
    rendered.add_column("type", overflow="fold")
    rendered.add_column("output shape")
    rendered.add_column("params", justify="right")
    for row in table.rows:
        rendered.add_row(row.name, row.type, row.output_shape, f"{row.params:,}")
    return rendered


def _totals(table: ModelSummary) -> str:
    return (
        f"Total params: {table.total_params:,}\nTrainable params: {table.trainable_params:,}\n"
        f"Non-trainable params: {table.non_trainable_params:,}"
    )
