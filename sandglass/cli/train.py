"""``sandglass train`` and ``sandglass prepare``: train a model with rich progress, or get its data ready."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sandglass.checkpoint import CONFIG_FILE, CheckpointError
from sandglass.cli.common import stdout_console
from sandglass.cli.errors import UsageError
from sandglass.cli.run_config import (
    build_run_config,
    default_run_dir,
    read_config_file,
    with_train_overrides,
)
from sandglass.config import DataConfig, RunConfig
from sandglass.data.synthetic import TASKS as SYNTHETIC_TASKS
from sandglass.durations import format_duration, parse_duration
from sandglass.training import (
    CheckpointSaved,
    StepLogged,
    StepSkipped,
    TrainingCallbacks,
    TrainingResult,
    TrainingStarted,
    Validated,
    train,
)
from sandglass.training.dataset import load_run_splits, token_limit, tokenizer_for
from sandglass.training.state import TRAINER_STATE_FILE

RUNS_ROOT = Path("checkpoints")
TRAIN_HELP = (
    "Train a model, showing loss, tokens/s, learning rate, ETA, validation scores and where checkpoints go.\n\n"
    "Every option can also come from a TOML file (--config) with \\[model], \\[data] and \\[train] sections whose "
    "keys are the configuration's field names (\\[model] also takes preset = NAME); the command line wins over "
    "the file, and the file over the preset. --debug (anywhere) shows the traceback of an error."
)
TRAIN_EPILOG = "Example: sandglass train --preset tiny --dataset reverse --max-time 10m"
PREPARE_HELP = (
    "Load a data set and train its tokenizer ahead of training; report split sizes and the vocabulary.\n\n"
    "Takes the data options of `sandglass train` (and --preset, whose model limits the sentence length); the "
    "tokenizer is cached in --data-cache, where `sandglass train` finds it."
)
PREPARE_EPILOG = "Example: sandglass prepare --dataset multi30k --data ~/data/multi30k --vocab-size 8000"

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML file with \\[model] \\[data] \\[train] settings.")
]
PresetOption = Annotated[str | None, typer.Option(help="Model preset: tiny, base, big, original, transformer-tiny, …")]
DatasetOption = Annotated[
    str | None,
    typer.Option(help="multi30k, reverse, copy, sort, a data file, a folder, or SRC_FILE,TGT_FILE."),
]
DataDirOption = Annotated[str | None, typer.Option("--data", help="Folder with the raw Multi30k files.")]
SrcOption = Annotated[str | None, typer.Option(help="Source language code (e.g. de).")]
TgtOption = Annotated[str | None, typer.Option(help="Target language code (e.g. en).")]
TaskOption = Annotated[str | None, typer.Option(help="translate, or reconstruct (target = source).")]
VocabSizeOption = Annotated[int | None, typer.Option(help="Most sentencepiece pieces (at least 5).")]
MaxLengthOption = Annotated[int | None, typer.Option(help="Longest sentence, in tokens, kept for training.")]
EncodingErrorsOption = Annotated[str | None, typer.Option(help="strict, or replace bytes that are not UTF-8.")]
DataCacheOption = Annotated[Path, typer.Option(help="Folder for the cached tokenizer models.")]
TrainSizeOption = Annotated[int | None, typer.Option(help="Synthetic tasks: training pairs (default 10000).")]
EvalSizeOption = Annotated[
    int | None, typer.Option(help="Validation and test pairs of a synthetic task, or held out from training.")
]
SymbolsOption = Annotated[int | None, typer.Option(help="Synthetic tasks: distinct symbols (default 60).")]
MinSymbolsOption = Annotated[int | None, typer.Option(help="Synthetic tasks: fewest symbols in a sequence.")]
MaxSymbolsOption = Annotated[int | None, typer.Option(help="Synthetic tasks: most symbols in a sequence (23).")]
DATA_FIELDS = frozenset(setting.name for setting in dataclasses.fields(DataConfig))


def data_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The options of a command that are ``DataConfig`` fields: its data parameters carry the field names."""
    return {name: value for name, value in options.items() if name in DATA_FIELDS}


def train_command(
    config_file: ConfigOption = None,
    preset: PresetOption = None,
    arch: Annotated[str | None, typer.Option(help="sandglass, transformer or original (without --preset).")] = None,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    src: SrcOption = None,
    tgt: TgtOption = None,
    task: TaskOption = None,
    vocab_size: VocabSizeOption = None,
    max_length: MaxLengthOption = None,
    max_tokens: Annotated[int | None, typer.Option(help="Tokens per batch (padded).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    warmup: Annotated[int | None, typer.Option(help="Learning-rate warmup steps.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many updates.")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Stop after this many epochs.")] = None,
    max_time: Annotated[str | None, typer.Option(help="Stop after this long: 90s, 30m, 2h, 1h30m.")] = None,
    validate_every: Annotated[int | None, typer.Option(help="Validate every this many steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="auto (bf16 on CUDA and on CPUs with bf16 units), float32 or bfloat16."),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Run folder (default: a new checkpoints/<preset>-<dataset>-<time>).", show_default=False),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir, or the newest run.")] = False,
    encoding_errors: EncodingErrorsOption = None,
    train_size: TrainSizeOption = None,
    eval_size: EvalSizeOption = None,
    symbols: SymbolsOption = None,
    min_symbols: MinSymbolsOption = None,
    max_symbols: MaxSymbolsOption = None,
    data_cache: DataCacheOption = Path("data"),
) -> None:
    data_values = data_settings(locals())
    sections = read_config_file(config_file) if config_file is not None else {}
    try:
        seconds = parse_duration(max_time) if max_time is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--max-time'") from None
    train_values = dict(
        max_tokens=max_tokens,
        lr=lr,
        warmup_steps=warmup,
        max_steps=max_steps,
        max_epochs=max_epochs,
        max_time=seconds,
        validate_every=validate_every,
        seed=seed,
        device=device,
        precision=precision,
    )
    if resume:
        model_and_data = (("preset", preset), ("arch", arch), *data_values.items())
        changed = ["--" + name.replace("_", "-") for name, value in model_and_data if value is not None]
        changed += [f"[{section}] of --config" for section in ("model", "data") if section in sections]
        if changed:
            raise UsageError(
                f"--resume keeps the run's own model and data; drop {', '.join(changed)} "
                "(only training settings may change)"
            )
        run_dir = run_dir or newest_resumable_run(RUNS_ROOT)
        config = with_train_overrides(RunConfig.load(run_dir / CONFIG_FILE), sections, train_values)
    else:
        config = build_run_config(
            file_sections=sections, preset_name=preset, arch=arch, data=data_values, train=train_values
        )
        name = preset or sections.get("model", {}).get("preset") or config.model.arch
        run_dir = run_dir or default_run_dir(name, config.data.dataset, RUNS_ROOT)
    console = stdout_console()
    train(config, run_dir, resume=resume, callbacks=TrainingDisplay(console), data_cache=data_cache)


def newest_resumable_run(root: Path) -> Path:
    """The run under ``root`` whose resume checkpoint was written last."""
    states = list(root.glob(f"*/{TRAINER_STATE_FILE}"))
    if not states:
        raise CheckpointError(f"no run to resume under {root}/; pass --run-dir or train without --resume")
    return max(states, key=lambda state: state.stat().st_mtime).parent


class TrainingDisplay(TrainingCallbacks):
    """Training progress as one line per event: step logs, validations, checkpoints and skipped steps."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def training_started(self, event: TrainingStarted) -> None:
        start = f"resuming at step {event.resumed_from_step:,}" if event.resumed_from_step else "training"
        self.console.print(
            f"{start}: {event.parameters:,} parameters on {event.device}{' in bf16' if event.bfloat16 else ''}, "
            f"{event.train_pairs:,} training and "
            f"{event.valid_pairs:,} validation pairs",
            style="bold",
            markup=False,
        )
        self.console.print(f"checkpoints go to {event.run_dir}", markup=False)

    def step_logged(self, event: StepLogged) -> None:
        eta = format_duration(event.eta_seconds) if event.eta_seconds is not None else "—"
        self.console.print(
            f"step {event.step:>7,}  epoch {event.epoch:>3}  loss {event.loss:8.4f}  "
            f"{event.tokens_per_second:>9,.0f} tok/s  lr {event.learning_rate:.2e}  "
            f"elapsed {format_duration(event.elapsed)}  ETA {eta}",
            markup=False,
        )

    def validated(self, event: Validated) -> None:
        line = Text(
            f"valid  step {event.step:>7,}  loss {event.loss:8.4f}  BLEU {event.bleu:6.2f}  "
            f"exact {event.exact_match:6.2f}%",
            style="cyan",
        )
        if event.is_best:
            line.append("  best so far", style="bold green")
        self.console.print(line)

    def checkpoint_saved(self, event: CheckpointSaved) -> None:
        self.console.print(f"checkpoint of step {event.step:,} saved in {event.path.parent}", style="dim", markup=False)

    def step_skipped(self, event: StepSkipped) -> None:
        self.console.print(f"step {event.step:,} skipped: {event.reason}", style="yellow", markup=False)

    def training_finished(self, result: TrainingResult) -> None:
        bleu = f"{result.best_bleu:.2f}" if result.best_bleu is not None else "not validated"
        self.console.print(
            f"finished ({result.stopped_because.replace('_', ' ')}) after {result.steps:,} steps, "
            f"{result.epochs} epoch(s), {format_duration(result.elapsed)}; best BLEU {bleu}",
            style="bold",
            markup=False,
        )
        self.console.print(f"translate with: sandglass translate FILE --checkpoint {result.run_dir}", markup=False)


def prepare_command(
    config_file: ConfigOption = None,
    preset: PresetOption = None,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    src: SrcOption = None,
    tgt: TgtOption = None,
    task: TaskOption = None,
    vocab_size: VocabSizeOption = None,
    max_length: MaxLengthOption = None,
    encoding_errors: EncodingErrorsOption = None,
    train_size: TrainSizeOption = None,
    eval_size: EvalSizeOption = None,
    symbols: SymbolsOption = None,
    min_symbols: MinSymbolsOption = None,
    max_symbols: MaxSymbolsOption = None,
    data_cache: DataCacheOption = Path("data"),
) -> None:
    data_values = data_settings(locals())
    sections = read_config_file(config_file) if config_file is not None else {}
    config = build_run_config(file_sections=sections, preset_name=preset, data=data_values)
    splits = load_run_splits(config.data)
    tokenizer = tokenizer_for(splits, config.data, data_cache)
    limit = token_limit(config)
    languages = "synthetic" if config.data.dataset in SYNTHETIC_TASKS else f"{config.data.src} → {config.data.tgt}"
    table = Table(title=f"{config.data.dataset}: {languages} ({config.data.task})")
    for column in ("split", "pairs", f"kept (1–{limit} tokens)", "longest (tokens)"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, corpus in (("train", splits.train), ("valid", splits.valid), ("test", splits.test)):
        if corpus is None:
            continue
        pairs = zip(tokenizer.encode(corpus.source), tokenizer.encode(corpus.target), strict=True)
        lengths = [(len(source), len(target)) for source, target in pairs]
        kept = sum(min(pair) >= 1 and max(pair) <= limit for pair in lengths)
        longest = max((max(pair) for pair in lengths), default=0)
        table.add_row(name, f"{len(corpus):,}", f"{kept:,}", f"{longest:,}")
    console = stdout_console()
    console.print(table)
    console.print(
        f"vocabulary: {tokenizer.vocab_size:,} pieces (asked for at most {config.data.vocab_size:,}); "
        f"tokenizer cached in {data_cache}/",
        markup=False,
    )
