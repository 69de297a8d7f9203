"""A benchmark's files: ``bench.json`` (every figure), ``bench.md`` (the table) and ``validation_bleu.png`` (validation
BLEU against training wall clock, every model), and the merge of several results into one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sandglass.bench.results import BenchResult, Comparison, DecodingResult, DirectionResult, ModelResult
from sandglass.checkpoint import atomic_write
from sandglass.durations import format_duration

JSON_FILE, TABLE_FILE, PLOT_FILE = "bench.json", "bench.md", "validation_bleu.png"
MISSING = "—"


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put each file."""

    json: Path
    table: Path
    plot: Path


def write_report(result: BenchResult, folder: Path) -> ReportFiles:
    """Write ``bench.json``, ``bench.md`` and ``validation_bleu.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(folder / JSON_FILE, folder / TABLE_FILE, folder / PLOT_FILE)
    json_text, table_text = result.to_json(), markdown_table(result)
    atomic_write(files.json, lambda temporary: temporary.write_text(json_text, encoding="utf-8"))
    atomic_write(files.table, lambda temporary: temporary.write_text(table_text, encoding="utf-8"))
    plot_validation_bleu(result, files.plot)
    return files


def merge_results(results: list[BenchResult]) -> BenchResult:
    """One result holding the directions of all of ``results`` (e.g. a de-en and an en-de bench), dated by the
    latest; raises ValueError when two hold the same direction or their budgets differ."""
    if not results:
        raise ValueError("nothing to merge")
    names = [f"{d.src}-{d.tgt}" for result in results for d in result.directions]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"direction {', '.join(repeated)} is in more than one bench.json; merge different ones")
    budgets = sorted({result.budget_seconds for result in results})
    if len(budgets) > 1:
        raise ValueError(f"the benches had different budgets ({', '.join(f'{b:g} s' for b in budgets)})")
    latest = max(results, key=lambda result: result.date)
    return replace(
        latest,
        command=" ; ".join(result.command for result in results),
        directions=[direction for result in results for direction in result.directions],
    )


def markdown_table(result: BenchResult) -> str:
    """The benchmark as markdown: a header, per direction a table of every model and decoding method, the
    comparisons with the Transformer, the teacher's cost, and the sacreBLEU signatures."""
    machine = result.machine
    lines = [
        "# SandGlass against the Transformer on Multi30k",
        "",
        f"Date {result.date}; budget {format_duration(result.budget_seconds)} of training wall clock per model; "
        f"command `{result.command}`.",
        f"Machine: {machine.processor}, {machine.usable_cpus} of {machine.cpu_count} CPUs usable, "
        f"{machine.threads} torch threads on {machine.device}, training in {machine.precision}; "
        f"torch {machine.torch}, Python {machine.python}.",
    ]
    for direction in result.directions:
        lines += ["", *_direction_section(direction, result)]
    lines += ["", *_notes(result)]
    return "\n".join(lines) + "\n"


def _direction_section(direction: DirectionResult, result: BenchResult) -> list[str]:
    batch = result.settings.get("batch_size", 64)
    lines = [
        f"## {direction.src} → {direction.tgt}",
        "",
        f"{direction.test_set}: {direction.test_sentences:,} sentences; {direction.train_pairs:,} training pairs; "
        f"joint sentencepiece of {direction.vocab_size:,} pieces.",
        "",
        "| model | preset | parameters | trained | steps | target tok/s | peak RSS MiB | decoding | BLEU | "
        f"BLEU lc | chrF | sent/s b1 | sent/s b{batch} |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for model in direction.models:
        lines += _model_rows(model, batch)
    if direction.comparisons:
        lines += [
            "",
            f"| against the Transformer | decoded in | greedy speed-up b1 | greedy speed-up b{batch} | "
            "training tok/s ratio | parameter ratio | greedy BLEU difference |",
            "|---|---|---:|---:|---:|---:|---:|",
            *(_comparison_row(comparison) for comparison in direction.comparisons),
        ]
    for model in direction.models:
        if model.teacher is not None:
            teacher = model.teacher
            lines += [
                "",
                f"{model.name}: the teacher ({teacher.run_dir}) translated {teacher.sentences:,} training sentences "
                f"at beam {teacher.beam_size} in {format_duration(teacher.seconds)}, "
                "not counted in the student's training.",
            ]
    return lines


def _model_rows(model: ModelResult, batch: int) -> list[str]:
    training = model.training
    rows = []
    for index, decoding in enumerate(model.decoding):
        first = index == 0
        single, batched = decoding.speed_at(1), decoding.speed_at(batch)
        cells = [
            model.name if first else "",
            model.preset if first else "",
            f"{model.parameters / 1e6:.2f}M" if first else "",
            format_duration(training.seconds) if first else "",
            f"{training.steps:,}" if first else "",
            _number(training.target_tokens_per_second, "{:,.0f}") if first else "",
            _number(training.peak_rss_mib, "{:,.0f}") if first else "",
            decoding_name(decoding),
            f"{decoding.scores.bleu:.2f}",
            f"{decoding.scores.bleu_lowercase:.2f}",
            f"{decoding.scores.chrf:.2f}",
            _number(single.sentences_per_second if single else None, "{:,.1f}"),
            _number(batched.sentences_per_second if batched else None, "{:,.1f}"),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def decoding_name(decoding: DecodingResult) -> str:
    """The method, with ``bf16`` after it when it ran under bf16 autocast (float32 is the unmarked case)."""
    return decoding.method if decoding.precision == "float32" else f"{decoding.method} bf16"


def _comparison_row(comparison: Comparison) -> str:
    cells = [
        comparison.model,
        comparison.precision,
        _number(comparison.greedy_speedup_batch_1, "{:.1f}×"),
        _number(comparison.greedy_speedup_batch_large, "{:.1f}×"),
        _number(comparison.training_speed_ratio, "{:.2f}×"),
        f"{comparison.parameter_ratio:.2f}×",
        f"{comparison.bleu_difference:+.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def _notes(result: BenchResult) -> list[str]:
    settings = result.settings
    signatures = next(
        (d.scores for direction in result.directions for model in direction.models for d in model.decoding), None
    )
    lines = [
        "Notes: BLEU is sacreBLEU (cased, 13a), BLEU lc the lowercased one, chrF sacreBLEU's default; the weights "
        "scored are the best by validation BLEU; a method marked bf16 ran under bf16 autocast, the others in "
        "float32. Decoding speed: the median of "
        f"{settings.get('speed_runs', '?')} timed runs after a warm-up batch, model load excluded; batch 1 over "
        f"the first {settings.get('single_sentences', '?')} test sentences, the large batch over all of them. "
        "Training target tok/s: the median over the progress windows of "
        f"{settings.get('log_every', '?')} steps. Peak RSS: the training process, interpreter and libraries included.",
    ]
    if signatures is not None:
        lines += [
            "",
            f"Signatures: BLEU `{signatures.bleu_signature}`; BLEU lc `{signatures.bleu_lowercase_signature}`; "
            f"chrF `{signatures.chrf_signature}`.",
        ]
    return lines


def plot_validation_bleu(result: BenchResult, path: Path) -> None:
    """Validation BLEU against training wall-clock seconds, one panel per direction, one line per model, and the
    budget (the last validation comes after it: training stops at the budget, then validates once more)."""
    count = max(len(result.directions), 1)
    figure = Figure(figsize=(6 * count, 4.5), tight_layout=True)
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(1, count, squeeze=False)[0]
    for axes, direction in zip(axes_list, result.directions, strict=False):
        for model in direction.models:
            curve = model.training.curve
            axes.plot([p.seconds for p in curve], [p.bleu for p in curve], marker="o", label=model.name)
        axes.axvline(result.budget_seconds, linestyle="--", color="grey", label="budget")
        axes.set_title(f"{direction.src} → {direction.tgt}")
        axes.set_xlabel("training wall clock (s)")
        axes.set_ylabel("validation BLEU")
        axes.grid(alpha=0.3)
        axes.legend()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))


def _number(value: float | None, pattern: str) -> str:
    return MISSING if value is None else pattern.format(value)
