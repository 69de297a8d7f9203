"""Throughput: decoding sentences per second of a loaded model, training target tokens per second of a run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sandglass.bench.config import BenchConfig
from sandglass.bench.results import DecodingResult, DecodingSpeed
from sandglass.checkpoint import LoadedRun
from sandglass.data.corpus import ParallelCorpus
from sandglass.metrics import score_corpus
from sandglass.translator import Translator

WARMUP_SENTENCES = 8


def measure_decoding(
    run: LoadedRun,
    lines: Sequence[str],
    *,
    batch_size: int,
    beam_size: int,
    runs: int,
    device: str = "cpu",
    precision: str = "float32",
) -> tuple[DecodingSpeed, list[str]]:
    """Translate ``lines`` ``runs`` times at ``batch_size`` in ``precision`` after one warm-up batch; the speed is
    the sentences over the median run's seconds (the model is already loaded). Also returns the translations of
    the last run."""
    translator = Translator(run, device=device, batch_size=batch_size, precision=precision)
    translator.translate(lines[: max(batch_size, WARMUP_SENTENCES)], beam_size=beam_size)
    seconds, translations = [], []
    for _ in range(runs):
        translations, timing = translator.translate_timed(lines, beam_size=beam_size)
        seconds.append(timing.seconds)
    median = statistics.median(seconds)
    rate = len(lines) / median if median > 0 else float("inf")
    return DecodingSpeed(batch_size, len(lines), seconds, rate), translations


def measure_method(
    run: LoadedRun, test: ParallelCorpus, method: str, *, beam_size: int, precision: str, config: BenchConfig
) -> DecodingResult:
    """Score one decoding method of ``run`` on ``test`` (from the large batch's translations) and time it at batch
    1 over the first ``config.single_sentences`` sources and at ``config.batch_size`` over all of them."""
    timing = dict(beam_size=beam_size, runs=config.speed_runs, device=config.device, precision=precision)
    single, _ = measure_decoding(run, test.source[: config.single_sentences], batch_size=1, **timing)
    batched, translations = measure_decoding(run, test.source, batch_size=config.batch_size, **timing)
    return DecodingResult(method, beam_size, score_corpus(translations, test.target), [single, batched], precision)


def training_tokens_per_second(window_rates: Sequence[float]) -> float | None:
    """The median of the target tokens/s of the progress windows, the first (warm-up) left out when there are
    three or more: windows that include a validation are the slow minority, so the median is the training pace."""
    rates = list(window_rates[1:] if len(window_rates) >= 3 else window_rates)
    return statistics.median(rates) if rates else None
