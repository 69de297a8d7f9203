"""The benchmark: per direction, train the Transformer and SandGlass (and a distilled SandGlass) for the same
wall-clock budget on the same data and tokenizer, then score and time every decoding method on the test set.

Layout of ``config.output_dir``: ``<src>-<tgt>/<model>/`` holds each run folder, ``<src>-<tgt>/distilled-data/``
the teacher's translations; :mod:`sandglass.bench.report` writes ``bench.json``, the table and the plot beside.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import torch

from sandglass.bench.config import TEST_SET, BenchConfig, Direction
from sandglass.bench.events import BenchCallbacks, DecodingMeasured, StageStarted
from sandglass.bench.isolated import TrainedRun, TrainingJob, train_in_child
from sandglass.bench.report import JSON_FILE, write_report
from sandglass.bench.results import (
    DISTILLED,
    SANDGLASS,
    TRANSFORMER,
    BenchResult,
    Comparison,
    DecodingResult,
    DirectionResult,
    Machine,
    ModelResult,
    TeacherCost,
    TrainingFigures,
)
from sandglass.bench.speed import measure_method, training_tokens_per_second
from sandglass.checkpoint import TOKENIZER_FILE, CheckpointError, LoadedRun, load_run
from sandglass.config import DataConfig, RunConfig, TransformerConfig, preset
from sandglass.data.corpus import DataError, DataSplits
from sandglass.data.multi30k import DATA_DIR_VARIABLE, load_multi30k
from sandglass.distill import DISTILLED_DATA, distill_corpus
from sandglass.precision import uses_bfloat16
from sandglass.tokenizer import Tokenizer
from sandglass.training.dataset import tokenizer_for
from sandglass.translator import Translator


def run_bench(config: BenchConfig, *, command: str = "", callbacks: BenchCallbacks | None = None) -> BenchResult:
    """Train and measure every model of every direction of ``config``.

    The report in ``config.output_dir`` is rewritten after each model, so a bench that is stopped keeps the
    figures of every model it finished."""
    callbacks = callbacks or BenchCallbacks()
    check_output_dir(config)
    started = datetime.now().astimezone()
    machine = describe_machine(config)

    def result_of(directions: list[DirectionResult]) -> BenchResult:
        return BenchResult(
            date=started.isoformat(timespec="seconds"),
            command=command,
            budget_seconds=config.budget,
            machine=machine,
            settings=config.to_dict(),
            directions=directions,
        )

    finished: list[DirectionResult] = []

    def report_so_far(current: DirectionResult) -> None:
        write_report(result_of([*finished, current]), config.output_dir)

    with torch_threads(config.threads):
        for direction in config.directions:
            finished.append(bench_direction(config, direction, callbacks, report_so_far))
    return result_of(finished)


def check_output_dir(config: BenchConfig) -> None:
    """A bench never trains over the runs of an earlier one, nor rewrites its report."""
    report = config.output_dir / JSON_FILE
    if report.exists():
        raise CheckpointError(f"{report} holds an earlier bench's figures; choose another --output")
    for direction in config.directions:
        folder = config.output_dir / direction.name
        if folder.is_dir() and any(folder.iterdir()):
            raise CheckpointError(f"{folder} already holds a bench's runs; choose another --output")


def bench_direction(
    config: BenchConfig,
    direction: Direction,
    callbacks: BenchCallbacks,
    on_model: Callable[[DirectionResult], object] = lambda current: None,
) -> DirectionResult:
    """Every model of one direction, trained and measured in turn (the Transformer first: it is the teacher);
    ``on_model`` receives the direction's result so far after each model."""
    splits = load_bench_splits(config, direction)
    data = DataConfig(
        dataset="multi30k",
        src=direction.src,
        tgt=direction.tgt,
        data_dir=str(config.data_dir),
        vocab_size=config.vocab_size,
    )
    tokenizer = tokenizer_for(splits, data, config.data_cache)
    folder = config.output_dir / direction.name
    bench = DirectionBench(config, direction, splits, tokenizer, folder, callbacks)

    def result_of(models: list[ModelResult]) -> DirectionResult:
        return DirectionResult(
            src=direction.src,
            tgt=direction.tgt,
            test_set=TEST_SET,
            test_sentences=len(splits.test),
            train_pairs=len(splits.train),
            vocab_size=tokenizer.vocab_size,
            models=models,
            comparisons=[
                comparison
                for precision in config.decode_precisions()
                for model in models[1:]
                if (comparison := compare(model, models[0], config.batch_size, precision)) is not None
            ],
        )

    transformer = bench.train_and_measure(TRANSFORMER, config.transformer_preset, data)
    on_model(result_of([transformer]))
    models = [transformer, bench.train_and_measure(SANDGLASS, config.sandglass_preset, data)]
    on_model(result_of(models))
    if config.distill:
        models.append(bench.distill_and_measure(transformer, data))
        on_model(result_of(models))
    return result_of(models)


def load_bench_splits(config: BenchConfig, direction: Direction) -> DataSplits:
    """Multi30k from the local folder (never the hub, so every model of every run sees the same files)."""
    if not Path(config.data_dir).is_dir():
        raise DataError(
            f"no Multi30k folder at {config.data_dir}; pass --data DIR (a folder with train, val and "
            f"{TEST_SET} .de/.en files, gzipped or not) or set {DATA_DIR_VARIABLE}=DIR"
        )
    splits = load_multi30k(src=direction.src, tgt=direction.tgt, data_dir=config.data_dir)
    if splits.test is None:  # pragma: no cover - load_multi30k requires the test split
        raise DataError(f"{config.data_dir}: no {TEST_SET} split")
    return splits


class DirectionBench:
    """Trains and measures the models of one direction on the same splits and tokenizer."""

    def __init__(
        self,
        config: BenchConfig,
        direction: Direction,
        splits: DataSplits,
        tokenizer: Tokenizer,
        folder: Path,
        callbacks: BenchCallbacks,
    ) -> None:
        self.config, self.direction, self.splits = config, direction, splits
        self.folder, self.callbacks = folder, callbacks
        self.tokenizer_path = folder / TOKENIZER_FILE
        tokenizer.save(self.tokenizer_path)

    def train_and_measure(
        self, name: str, preset_name: str, data: DataConfig, teacher: TeacherCost | None = None
    ) -> ModelResult:
        """Train ``name`` in a process of its own on the data ``data`` names, then score and time it."""
        run_dir = self.folder / name
        self._stage(name, "train", f"training {name} ({preset_name}) for {self.config.budget:g} s into {run_dir}")
        config = bench_run_config(self.config, preset_name, data)
        job = TrainingJob(config, run_dir, self.tokenizer_path, self.config.threads)
        trained = train_in_child(job, self.callbacks.training_callbacks())
        self._stage(name, "evaluate", f"scoring and timing {name} on {TEST_SET}")
        run = load_run(run_dir, device=self.config.device)
        return ModelResult(
            name=name,
            preset=preset_name,
            run_dir=str(run_dir),
            parameters=sum(parameter.numel() for parameter in run.model.parameters()),
            training=training_figures(trained),
            decoding=[
                self._measure(name, run, method, beam, precision)
                for precision in self.config.decode_precisions()
                for method, beam in decoding_methods(run, self.config)
            ],
            teacher=teacher,
        )

    def distill_and_measure(self, transformer: ModelResult, data: DataConfig) -> ModelResult:
        beam = self.config.beam
        self._stage(DISTILLED, "distill", f"translating the training source with {transformer.run_dir}, beam {beam}")
        teacher = Translator(
            load_run(Path(transformer.run_dir), device=self.config.device),
            device=self.config.device,
            batch_size=self.config.batch_size,
        )
        folder, progress = self.folder / DISTILLED_DATA, self.callbacks.teacher_progress
        corpus = distill_corpus(teacher, self.splits, folder, beam_size=beam, on_batch=progress)
        cost = TeacherCost(transformer.run_dir, beam, corpus.sentences, corpus.seconds)
        distilled_data = dataclasses.replace(data, dataset=str(corpus.folder), data_dir=None)
        return self.train_and_measure(DISTILLED, self.config.sandglass_preset, distilled_data, cost)

    def _measure(self, name: str, run: LoadedRun, method: str, beam: int, precision: str) -> DecodingResult:
        result = measure_method(run, self.splits.test, method, beam_size=beam, precision=precision, config=self.config)
        event = DecodingMeasured(self.direction.name, name, method, result.scores.bleu, result.speeds, precision)
        self.callbacks.decoding_measured(event)
        return result

    def _stage(self, model: str, stage: str, detail: str) -> None:
        self.callbacks.stage_started(StageStarted(self.direction.name, model, stage, detail))


def bench_run_config(config: BenchConfig, preset_name: str, data: DataConfig) -> RunConfig:
    """The preset's model and optimization, stopped by the time budget alone (no step, epoch or patience
    limit), validated every ``config.validate_every`` steps when set."""
    chosen = preset(preset_name)
    train = dataclasses.replace(
        chosen.train,
        max_time=config.budget,
        max_steps=None,
        max_epochs=None,
        patience=None,
        log_every=config.log_every,
        validate_every=config.validate_every or chosen.train.validate_every,
        seed=config.seed,
        device=config.device,
    )
    return RunConfig(model=chosen.model, data=data, train=train)


def decoding_methods(run: LoadedRun, config: BenchConfig) -> list[tuple[str, int]]:
    """(method name, beam size) of every decoding measured for this model."""
    if isinstance(run.config.model, TransformerConfig):
        return [("greedy", 1)] + ([(f"beam{config.beam}", config.beam)] if config.beam > 1 else [])
    return [("ctc-greedy", 1)] + ([(f"ctc-beam{config.ctc_beam}", config.ctc_beam)] if config.ctc_beam > 1 else [])


def training_figures(trained: TrainedRun) -> TrainingFigures:
    result = trained.result
    return TrainingFigures(
        seconds=result.elapsed,
        steps=result.steps,
        epochs=result.epochs,
        stopped_because=result.stopped_because,
        best_valid_bleu=result.best_bleu,
        target_tokens_per_second=training_tokens_per_second(trained.window_rates),
        peak_rss_mib=trained.peak_rss_mib,
        curve=trained.curve,
    )


def compare(model: ModelResult, reference: ModelResult, batch_size: int, precision: str) -> Comparison | None:
    """``model``'s greedy decoding in ``precision`` and training speed over ``reference``'s, and their size and
    BLEU; None when either was not decoded greedily in ``precision``."""
    ours, theirs = model.greedy(precision), reference.greedy(precision)
    if ours is None or theirs is None:
        return None
    ours_rate, theirs_rate = model.training.target_tokens_per_second, reference.training.target_tokens_per_second
    return Comparison(
        model=model.name,
        versus=reference.name,
        greedy_speedup_batch_1=_speedup(ours, theirs, 1),
        greedy_speedup_batch_large=_speedup(ours, theirs, batch_size),
        training_speed_ratio=ours_rate / theirs_rate if ours_rate and theirs_rate else None,
        parameter_ratio=model.parameters / reference.parameters,
        bleu_difference=ours.scores.bleu - theirs.scores.bleu,
        precision=precision,
    )


def _speedup(ours: DecodingResult, theirs: DecodingResult, batch_size: int) -> float | None:
    mine, reference = ours.speed_at(batch_size), theirs.speed_at(batch_size)
    if mine is None or reference is None or reference.sentences_per_second <= 0:
        return None
    return mine.sentences_per_second / reference.sentences_per_second


def describe_machine(config: BenchConfig) -> Machine:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Machine(
        cpu_count=os.cpu_count() or 1,
        usable_cpus=usable,
        processor=processor_name(),
        platform=platform.platform(),
        python=sys.version.split()[0],
        torch=torch.__version__,
        threads=config.threads,
        device=config.device,
        precision="bfloat16" if uses_bfloat16(torch.device(config.device), "auto") else "float32",
    )


def processor_name() -> str:
    """The CPU model from /proc/cpuinfo on Linux, else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads, restoring the previous number after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
