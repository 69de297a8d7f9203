"""``sandglass bench`` and ``sandglass distill``: SandGlass against the Transformer on Multi30k, and sequence-level
knowledge distillation from a trained Transformer."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sandglass.bench import BenchCallbacks, BenchConfig, BenchResult, Direction, merge_results, run_bench, write_report
from sandglass.bench.config import DEFAULT_DATA_DIR
from sandglass.bench.events import DecodingMeasured, StageStarted
from sandglass.cli.common import check_device, load_translator, stderr_console, stdout_console
from sandglass.cli.errors import UsageError
from sandglass.cli.train import TrainingDisplay
from sandglass.config import ConfigError
from sandglass.data.corpus import DataSplits
from sandglass.data.multi30k import DATA_DIR_VARIABLE
from sandglass.distill import DISTILLED_DATA, DistilledCorpus, distill_corpus, student_config, student_preset
from sandglass.durations import format_duration, parse_duration
from sandglass.training import TrainingCallbacks, train
from sandglass.training.dataset import load_run_splits
from sandglass.translator import Translator

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RUNS_ROOT = Path("checkpoints")
BENCH_HELP = (
    "Train SandGlass and the Transformer reference on Multi30k for the same wall-clock budget, with one shared "
    "sentencepiece model, then score (sacreBLEU, chrF, with signatures) and time (sentences/s at batch 1 and 64) "
    "every decoding method on test_2016_flickr.\n\n"
    "Writes bench.json, bench.md (the table) and validation_bleu.png into --output, again after each model, so a "
    "stopped bench keeps what it measured. Each model trains in a process of its own, so its peak memory is its "
    "own. --merge A/bench.json B/bench.json joins benches (e.g. de-en and "
    "en-de) into one table without training. Every option can also come from a TOML file (--config) with a "
    "\\[bench] section whose keys are the option names; the command line wins."
)
BENCH_EPILOG = "Example: sandglass bench --budget 30m --distill --output checkpoints/bench-de-en"
DISTILL_HELP = (
    "Translate the training source of a trained run (the teacher, usually a Transformer) with beam search, then "
    "train SandGlass on the teacher's translations (sequence-level knowledge distillation).\n\n"
    "The distilled data set (train from the teacher, val and test_2016_flickr unchanged) goes to "
    "OUTPUT/distilled-data/ and the student run to OUTPUT; the student uses the teacher's tokenizer. The "
    "teacher's translation time is reported on its own."
)
DISTILL_EPILOG = "Example: sandglass distill --teacher checkpoints/bench/de-en/transformer --budget 30m"
# Option names of the [bench] TOML section, besides BenchConfig's own fields.
FILE_ONLY_KEYS = ("src", "tgt", "both_directions", "data", "output")
TEACHER_REPORT_EVERY = 1000
BENCH_DEFAULTS = BenchConfig()


def _defaulted(text: str, name: str) -> str:
    return f"{text} (default {getattr(BENCH_DEFAULTS, name)})."


def bench_command(
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file with a \\[bench] section.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data", help=f"Multi30k folder (default: ${DATA_DIR_VARIABLE}, else {DEFAULT_DATA_DIR})."),
    ] = None,
    src: Annotated[str | None, typer.Option(help="Source language (default de).")] = None,
    tgt: Annotated[str | None, typer.Option(help="Target language (default en).")] = None,
    both_directions: Annotated[
        bool | None, typer.Option("--both-directions", help="Also bench tgt → src, in the same table.")
    ] = None,
    budget: Annotated[str | None, typer.Option(help="Training time per model: 90s, 30m, 1h (default 30m).")] = None,
    sandglass_preset: Annotated[
        str | None, typer.Option(help=_defaulted("SandGlass preset", "sandglass_preset"))
    ] = None,
    transformer_preset: Annotated[
        str | None, typer.Option(help=_defaulted("Transformer preset", "transformer_preset"))
    ] = None,
    distill: Annotated[
        bool | None, typer.Option("--distill", help="Also train SandGlass on the Transformer's beam translations.")
    ] = None,
    beam: Annotated[
        int | None, typer.Option(min=1, help=_defaulted("Transformer beam, also the teacher's", "beam"))
    ] = None,
    ctc_beam: Annotated[
        int | None, typer.Option(min=0, help=_defaulted("CTC prefix beam size; 0 skips it", "ctc_beam"))
    ] = None,
    decode_precision: Annotated[
        str | None,
        typer.Option(
            help=_defaulted(
                "Decode every model in float32, bfloat16 or both; auto: both where the CPU or GPU multiplies "
                "bf16 natively, else float32",
                "decode_precision",
            )
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help=_defaulted("Torch CPU threads", "threads"))] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help=_defaulted("The large decoding batch", "batch_size"))
    ] = None,
    single_sentences: Annotated[
        int | None, typer.Option(min=1, help=_defaulted("Test sentences timed at batch 1", "single_sentences"))
    ] = None,
    speed_runs: Annotated[
        int | None, typer.Option(min=1, help=_defaulted("Timed runs per speed, median kept", "speed_runs"))
    ] = None,
    validate_every: Annotated[
        int | None, typer.Option(min=1, help="Validate every N steps (default: the presets').")
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(min=5, help=_defaulted("Shared sentencepiece size", "vocab_size"))
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output folder (default checkpoints/bench-<date>).")
    ] = None,
    data_cache: Annotated[Path | None, typer.Option(help="Folder for the cached tokenizer (default data).")] = None,
    merge: Annotated[
        list[Path] | None, typer.Option("--merge", help="bench.json to merge instead of training (repeat it).")
    ] = None,
) -> None:
    console = stdout_console()
    if merge:
        try:
            merged = merge_results([load_result(path) for path in merge])
        except ValueError as error:
            raise UsageError(str(error)) from None
        report_files(console, merged, output or default_output())
        return
    values = read_bench_file(config_file) if config_file is not None else {}
    given = dict(
        data=data_dir,
        src=src,
        tgt=tgt,
        both_directions=both_directions,
        budget=budget,
        sandglass_preset=sandglass_preset,
        transformer_preset=transformer_preset,
        distill=distill,
        beam=beam,
        ctc_beam=ctc_beam,
        decode_precision=decode_precision,
        threads=threads,
        batch_size=batch_size,
        single_sentences=single_sentences,
        speed_runs=speed_runs,
        validate_every=validate_every,
        vocab_size=vocab_size,
        output=output,
        data_cache=data_cache,
    )
    values |= {name: value for name, value in given.items() if value is not None}
    config = bench_config(values)
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    result = run_bench(config, command=command, callbacks=BenchDisplay(console))
    report_files(console, result, config.output_dir)


def read_bench_file(path: Path) -> dict[str, Any]:
    """The ``[bench]`` section of a TOML file, keys with dashes or underscores."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such configuration file; check the --config path", str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); fix the file") from None
    unexpected = [name for name in raw if name != "bench"]
    if unexpected or not isinstance(raw.get("bench", {}), dict):
        raise ConfigError(f"{path}: the file holds only a [bench] section, found {', '.join(unexpected) or 'bench'}")
    return {key.replace("-", "_"): value for key, value in raw.get("bench", {}).items()}


def bench_config(values: dict[str, Any]) -> BenchConfig:
    """A :class:`BenchConfig` from option values (names as the options, ``data`` and ``output`` for paths)."""
    fields = {field.name for field in dataclasses.fields(BenchConfig)} - {"directions", "data_dir", "output_dir"}
    unknown = sorted(set(values) - fields - set(FILE_ONLY_KEYS))
    if unknown:
        valid = ", ".join(sorted(fields | set(FILE_ONLY_KEYS)))
        raise ConfigError(f"unknown bench setting(s) {', '.join(unknown)}; valid: {valid}")
    settings = {name: value for name, value in values.items() if name in fields}
    if "budget" in settings:
        try:
            settings["budget"] = parse_duration(settings["budget"])
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="'--budget'") from None
    if "data_cache" in settings:
        settings["data_cache"] = Path(settings["data_cache"])
    direction = Direction(values.get("src", "de"), values.get("tgt", "en"))
    directions = (direction, direction.reversed()) if values.get("both_directions") else (direction,)
    data_dir = values.get("data") or os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR
    output_dir = Path(values.get("output") or default_output())
    return BenchConfig(data_dir=Path(data_dir), directions=directions, output_dir=output_dir, **settings)


def default_output() -> Path:
    return RUNS_ROOT / f"bench-{datetime.now():%Y%m%d-%H%M%S}"


def load_result(path: Path) -> BenchResult:
    """A bench.json (or the folder holding one), read back."""
    path = Path(path) / "bench.json" if Path(path).is_dir() else Path(path)
    try:
        return BenchResult.load(path)
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such bench.json; pass the file or the folder a bench wrote", str(path)) from None
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{path} is not a bench.json this sandglass can read ({error})") from None


def report_files(console: Console, result: BenchResult, folder: Path) -> None:
    """Write the report files and print the headline ratios and where the files went."""
    files = write_report(result, folder)
    for direction in result.directions:
        for comparison in direction.comparisons:
            speedups = [comparison.greedy_speedup_batch_1, comparison.greedy_speedup_batch_large]
            shown = ", ".join("—" if value is None else f"{value:.1f}×" for value in speedups)
            console.print(
                f"{direction.src}-{direction.tgt} {comparison.model}, both in {comparison.precision}: greedy "
                f"sentences/s over the Transformer's at batch 1 and {result.settings.get('batch_size')}: {shown}; "
                f"BLEU {comparison.bleu_difference:+.2f}",
                markup=False,
            )
    console.print(f"wrote {files.json}, {files.table} and {files.plot}", style="bold", markup=False)


class BenchDisplay(BenchCallbacks):
    """Bench progress as lines: each stage, every training event, the teacher's progress, each measurement."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.translated = 0

    def stage_started(self, event: StageStarted) -> None:
        self.console.print(f"[{event.direction}] {event.detail}", style="bold magenta", markup=False)
        self.translated = 0

    def training_callbacks(self) -> TrainingCallbacks:
        return TrainingDisplay(self.console)

    def teacher_progress(self, sentences: int) -> None:
        before, self.translated = self.translated, self.translated + sentences
        if before // TEACHER_REPORT_EVERY != self.translated // TEACHER_REPORT_EVERY:
            self.console.print(f"teacher: {self.translated:,} sentences translated", style="dim", markup=False)

    def decoding_measured(self, event: DecodingMeasured) -> None:
        speeds = ", ".join(f"{speed.sentences_per_second:,.1f} at batch {speed.batch_size}" for speed in event.speeds)
        self.console.print(
            f"[{event.direction}] {event.model} {event.method} in {event.precision}: BLEU {event.bleu:.2f}; "
            f"sentences/s {speeds}",
            style="cyan",
            markup=False,
        )


def distill_command(
    teacher: Annotated[Path, typer.Option("--teacher", help="Run folder of the trained teacher (a Transformer).")],
    beam: Annotated[int, typer.Option(min=1, help="The teacher's beam size.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences the teacher translates together.")] = 64,
    preset: Annotated[str, typer.Option(help="The student's preset (a SandGlass one).")] = "base",
    budget: Annotated[str, typer.Option(help="The student's training time: 90s, 30m, 1h.")] = "30m",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Student run folder (default checkpoints/distilled-<teacher>-<date>)."),
    ] = None,
    validate_every: Annotated[
        int | None, typer.Option(min=1, help="Validate the student every N steps (default: its preset's).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch CPU threads (default: torch's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    try:
        seconds = parse_duration(budget)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--budget'") from None
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    student_preset(preset)
    console = stdout_console()
    translator = load_translator(teacher, check_device(device), batch_size)
    run_dir = output or RUNS_ROOT / f"distilled-{translator.run.path.name}-{datetime.now():%Y%m%d-%H%M%S}"
    splits = load_run_splits(translator.run.config.data)
    corpus = translate_with_teacher(translator, splits, run_dir / DISTILLED_DATA, beam)
    console.print(
        f"teacher {corpus.teacher}: {corpus.sentences:,} training sentences at beam {beam} in "
        f"{format_duration(corpus.seconds)} ({corpus.sentences / max(corpus.seconds, 1e-9):,.1f} sentences/s); "
        f"distilled data in {corpus.folder}",
        markup=False,
    )
    config = student_config(translator.run.config, corpus, preset, max_time=seconds)
    validation = {} if validate_every is None else {"validate_every": validate_every}
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, device=device, **validation))
    train(config, run_dir, callbacks=TrainingDisplay(console), tokenizer=translator.tokenizer)


def translate_with_teacher(translator: Translator, splits: DataSplits, folder: Path, beam: int) -> DistilledCorpus:
    """:func:`distill_corpus` with a progress bar on stderr (shown only on a terminal)."""
    console = stderr_console()
    columns = (TextColumn("teacher translating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("distill", total=len(splits.train))
        return distill_corpus(
            translator, splits, folder, beam_size=beam, on_batch=lambda count: progress.advance(task, count)
        )
