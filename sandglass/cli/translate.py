"""``sandglass translate`` and ``sandglass eval``: translate text, or score translations of a test set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sandglass.checkpoint import CONFIG_FILE
from sandglass.cli.common import (
    TRUNCATION_NOTE,
    BatchSizeOption,
    BeamOption,
    CheckpointOption,
    DeviceOption,
    EncodingErrorsOption,
    PrecisionOption,
    check_choice,
    check_device,
    load_translator,
    read_input,
    stderr_console,
    stdout_console,
    write_lines,
)
from sandglass.cli.errors import UsageError
from sandglass.data.corpus import DataError, ParallelCorpus
from sandglass.data.readers import read_parallel_text
from sandglass.metrics import exact_match, score_corpus
from sandglass.precision import PRECISIONS
from sandglass.training.dataset import data_paths, load_run_splits, paths_outside, relocated
from sandglass.translator import TranslationTiming, Translator

TRANSLATE_HELP = (
    "Translate FILE (or standard input with -), one sentence per line.\n\n"
    "Standard output gets exactly one translation per input line, in order, and nothing else; empty lines stay "
    f"empty. Progress goes to standard error. {TRUNCATION_NOTE}"
)
TRANSLATE_EPILOG = "Example: sandglass translate sentences.de --checkpoint checkpoints/tiny-multi30k --beam 4 > out.en"
EVAL_HELP = (
    "Translate a test set and print BLEU, chrF, TER (with sacreBLEU signatures) and exact match.\n\n"
    "By default the test split of the run's own data set (files its config names are read only inside the "
    "current folder; name them elsewhere with --data); or --src-file with --ref-file. "
    f"{TRUNCATION_NOTE}"
)
EVAL_EPILOG = "Example: sandglass eval --checkpoint checkpoints/tiny-reverse --split test --json"


def translate_command(
    source: Annotated[str, typer.Argument(metavar="FILE|-", help="Sentences to translate; - reads standard input.")],
    checkpoint: CheckpointOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the translations here instead of to stdout.")
    ] = None,
    beam: BeamOption = 1,
    batch_size: BatchSizeOption = 64,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "float32",
    encoding_errors: EncodingErrorsOption = "strict",
) -> None:
    check_device(device)
    check_choice(precision, PRECISIONS, "--precision")
    lines = read_input(source, encoding_errors)
    translator = load_translator(checkpoint, device, batch_size, precision)
    translations, timing = translate_with_progress(translator, lines, beam)
    write_lines(translations, output)
    report_timing(timing)


def eval_command(
    checkpoint: CheckpointOption = None,
    split: Annotated[str, typer.Option("--split", help="Which split of the run's data set: test or valid.")] = "test",
    src_file: Annotated[Path | None, typer.Option("--src-file", help="Source sentences, one per line.")] = None,
    ref_file: Annotated[Path | None, typer.Option("--ref-file", help="Reference translations, line-aligned.")] = None,
    beam: BeamOption = 1,
    batch_size: BatchSizeOption = 64,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "float32",
    json_output: Annotated[bool, typer.Option("--json", help="Print the scores as one JSON object.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the translations here.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data", help="Where the run's data set is now (its Multi30k folder, or its data file/folder)."),
    ] = None,
) -> None:
    if (src_file is None) != (ref_file is None):
        raise UsageError("give --src-file and --ref-file together")
    if split not in ("test", "valid"):
        raise typer.BadParameter(f"{split!r} is not one of test, valid", param_hint="'--split'")
    translator = load_translator(checkpoint, device, batch_size, precision)
    if src_file is not None:
        corpus, data_name = read_parallel_text(src_file, ref_file), f"{src_file} + {ref_file}"
    else:
        corpus, data_name = run_split(translator, split, data_dir), f"{translator.run.config.data.dataset} ({split})"
    hypotheses, timing = translate_with_progress(translator, corpus.source, beam)
    if output is not None:
        write_lines(hypotheses, output)
    scores = score_corpus(hypotheses, corpus.target)
    result = {
        "checkpoint": str(translator.run.path),
        "data": data_name,
        "sentences": len(corpus),
        "beam": beam,
        "precision": translator.precision,
        "bleu": scores.bleu,
        "bleu_lowercase": scores.bleu_lowercase,
        "chrf": scores.chrf,
        "ter": scores.ter,
        "exact_match": exact_match(hypotheses, corpus.target),
        "seconds": timing.seconds,
        "signatures": {
            "bleu": scores.bleu_signature,
            "bleu_lowercase": scores.bleu_lowercase_signature,
            "chrf": scores.chrf_signature,
            "ter": scores.ter_signature,
        },
    }
    if json_output:
        typer.echo(json.dumps(result, indent=2))
    else:
        stdout_console().print(scores_table(result))


def run_split(translator: Translator, split: str, data_dir: Path | None = None) -> ParallelCorpus:
    """The test or validation pairs of the data set the run was trained on, found in ``data_dir`` if given.

    A run folder may come from someone else: the files its ``config.json`` names are read only when they lie
    inside the current folder; elsewhere the user names them (``--data``, or ``--src-file``/``--ref-file``).
    """
    data = translator.run.config.data
    if data_dir is not None:
        data = relocated(data, data_dir)
    else:
        outside = paths_outside(data_paths(data), Path.cwd())
        if outside:
            raise DataError(
                f"{translator.run.path / CONFIG_FILE} names data at {outside[0]}, outside the current folder, "
                "and sandglass follows a run's paths only inside it; name the data with --data, or pass the "
                "test files with --src-file and --ref-file"
            )
    splits = load_run_splits(data)
    corpus = splits.test if split == "test" else splits.valid
    if corpus is None:
        raise DataError(
            f"the data set {translator.run.config.data.dataset!r} has no test split; use --split valid "
            "or give --src-file and --ref-file"
        )
    return corpus


def translate_with_progress(translator: Translator, lines: list[str], beam: int) -> tuple[list[str], TranslationTiming]:
    """Translate with a progress bar on stderr (shown only on a terminal)."""
    console = stderr_console()
    columns = (TextColumn("translating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("translate", total=sum(1 for line in lines if line.strip()))
        translations, timing = translator.translate_timed(
            lines, beam_size=beam, on_batch=lambda count: progress.advance(task, count)
        )
    if timing.truncated:
        console.print(
            f"warning: {timing.truncated} sentence(s) longer than {translator.max_source_tokens} tokens were "
            "truncated to that length",
            style="yellow",
        )
    return translations, timing


def report_timing(timing: TranslationTiming) -> None:
    rate = timing.sentences / timing.seconds if timing.seconds > 0 else 0.0
    stderr_console().print(
        f"translated {timing.sentences} sentence(s) in {timing.seconds:.2f} s ({rate:.1f} sentences/s)",
        style="dim",
    )


def scores_table(result: dict) -> Table:
    table = Table(
        title=f"{result['data']}: {result['sentences']} sentences, beam {result['beam']}, {result['precision']}"
    )
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("sacreBLEU signature", overflow="fold")
    signatures = result["signatures"]
    table.add_row("BLEU", f"{result['bleu']:.2f}", signatures["bleu"])
    table.add_row("BLEU (lowercase)", f"{result['bleu_lowercase']:.2f}", signatures["bleu_lowercase"])
    table.add_row("chrF", f"{result['chrf']:.2f}", signatures["chrf"])
    table.add_row("TER", f"{result['ter']:.2f}", signatures["ter"])
    table.add_row("exact match %", f"{result['exact_match']:.2f}", "")
    return table
