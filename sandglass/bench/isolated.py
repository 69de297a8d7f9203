"""Training a model in a process of its own, so its peak resident memory is its own.

The child is started with ``spawn`` (a fresh interpreter, nothing inherited from the bench), trains with
:func:`sandglass.training.train`, and sends its progress events back through a queue; the parent passes them
to its callbacks as they arrive. The child's errors are raised again in the parent. A child whose parent is
gone (the bench was killed) stops as on SIGTERM: it saves a checkpoint and ends, instead of training on alone.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sandglass.bench.results import CurvePoint
from sandglass.checkpoint import CheckpointError
from sandglass.config import ConfigError, RunConfig
from sandglass.data.corpus import DataError
from sandglass.tokenizer import Tokenizer, TokenizerError
from sandglass.training import (
    CheckpointSaved,
    StepLogged,
    StepSkipped,
    TrainingCallbacks,
    TrainingInterrupted,
    TrainingResult,
    TrainingStarted,
    TrainingStopped,
    Validated,
    train,
)

# Errors whose single message is all they hold: the parent raises the same class with the same message.
PLAIN_ERRORS = {error.__name__: error for error in (ConfigError, DataError, CheckpointError, TokenizerError)}
PLAIN_ERRORS[TrainingStopped.__name__] = TrainingStopped
POLL_SECONDS = 0.5
PARENT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class TrainingJob:
    """A run to train: its configuration (whose data settings name the data), its folder, the shared tokenizer's
    model file and the number of CPU threads. Small, so that starting a process never waits on a full pipe."""

    config: RunConfig
    run_dir: Path
    tokenizer_path: Path
    threads: int


@dataclass(frozen=True)
class TrainedRun:
    """A finished training: the trainer's result, the model's size, the validation curve against training
    wall clock, each progress window's target tokens/s, and the process' peak resident memory."""

    result: TrainingResult
    parameters: int
    curve: list[CurvePoint]
    window_rates: list[float]
    peak_rss_mib: float | None


class ChildTraceback(Exception):  # noqa: N818 (it holds a traceback, it is not an error of its own)
    """The traceback of an unexpected error in a training process, chained under the error raised here."""


class TrainingRecorder(TrainingCallbacks):
    """Passes every event on, stamping validations with the seconds since training started and keeping each
    progress window's target tokens per second."""

    def __init__(self, forward: TrainingCallbacks) -> None:
        self.forward = forward
        self.started = time.monotonic()
        self.parameters = 0
        self.curve: list[CurvePoint] = []
        self.window_rates: list[float] = []

    def training_started(self, event: TrainingStarted) -> None:
        self.started, self.parameters = time.monotonic(), event.parameters
        self.forward.training_started(event)

    def step_logged(self, event: StepLogged) -> None:
        self.window_rates.append(event.target_tokens_per_second)
        self.forward.step_logged(event)

    def validated(self, event: Validated) -> None:
        self.curve.append(CurvePoint(time.monotonic() - self.started, event.step, event.bleu))
        self.forward.validated(event)

    def checkpoint_saved(self, event: CheckpointSaved) -> None:
        self.forward.checkpoint_saved(event)

    def step_skipped(self, event: StepSkipped) -> None:
        self.forward.step_skipped(event)


class QueueCallbacks(TrainingCallbacks):
    """Every event onto a queue, as ``("event", method name, event)``."""

    def __init__(self, messages: Any) -> None:
        self.messages = messages

    def training_started(self, event: TrainingStarted) -> None:
        self.messages.put(("event", "training_started", event))

    def step_logged(self, event: StepLogged) -> None:
        self.messages.put(("event", "step_logged", event))

    def validated(self, event: Validated) -> None:
        self.messages.put(("event", "validated", event))

    def checkpoint_saved(self, event: CheckpointSaved) -> None:
        self.messages.put(("event", "checkpoint_saved", event))

    def step_skipped(self, event: StepSkipped) -> None:
        self.messages.put(("event", "step_skipped", event))


def peak_rss_mib() -> float | None:
    """This process' peak resident set size in MiB (None where the platform does not report it)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def run_job(job: TrainingJob, callbacks: TrainingCallbacks) -> TrainedRun:
    """Train ``job`` in this process."""
    torch.set_num_threads(job.threads)
    recorder = TrainingRecorder(callbacks)
    result = train(job.config, job.run_dir, callbacks=recorder, tokenizer=Tokenizer.load(job.tokenizer_path))
    return TrainedRun(result, recorder.parameters, recorder.curve, recorder.window_rates, peak_rss_mib())


def watch_parent(
    parent_pid: int,
    on_orphaned: Callable[[], None],
    *,
    current_parent: Callable[[], int] = os.getppid,
    poll_seconds: float = PARENT_POLL_SECONDS,
) -> threading.Thread:
    """A daemon thread that calls ``on_orphaned`` once this process' parent is no longer ``parent_pid``."""

    def watch() -> None:
        while current_parent() == parent_pid:
            time.sleep(poll_seconds)
        on_orphaned()

    watcher = threading.Thread(target=watch, name="parent-watch", daemon=True)
    watcher.start()
    return watcher


def _interrupt_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler: finish the batch, save, stop


def _child_main(job: TrainingJob, messages: Any) -> None:
    watch_parent(os.getppid(), _interrupt_self)
    try:
        messages.put(("done", run_job(job, QueueCallbacks(messages))))
    except TrainingInterrupted as error:
        messages.put(("interrupted", (error.checkpoint_path, error.signal_name)))
    except BaseException as error:  # everything goes back to the parent, which raises it there
        messages.put(("error", (type(error).__name__, str(error), traceback.format_exc())))


def train_in_child(job: TrainingJob, callbacks: TrainingCallbacks) -> TrainedRun:
    """Train ``job`` in a spawned process, passing its events to ``callbacks``; raises what training raised."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    process = context.Process(target=_child_main, args=(job, messages), name=str(job.run_dir))
    process.start()
    try:
        while True:
            kind, payload = _next_message(messages, process)
            if kind == "event":
                method, event = payload
                getattr(callbacks, method)(event)
            elif kind == "done":
                return payload
            elif kind == "interrupted":
                raise TrainingInterrupted(*payload)
            else:
                raise _rebuilt_error(job, *payload)
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.terminate()
            process.join()


def _next_message(messages: Any, process: Any) -> tuple[str, Any]:
    while True:
        try:
            message = messages.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if process.is_alive():
                continue
            try:  # it may have sent its last message just before it ended
                message = messages.get(timeout=POLL_SECONDS)
            except queue.Empty:
                code = process.exitcode
                how = f"was killed by signal {-code} (out of memory?)" if code < 0 else f"exited with status {code}"
                raise RuntimeError(f"the training process for {process.name} {how} without a result") from None
        kind = message[0]
        return (kind, message[1:] if kind == "event" else message[1])


def _rebuilt_error(job: TrainingJob, name: str, message: str, child_traceback: str) -> Exception:
    if name in PLAIN_ERRORS:
        return PLAIN_ERRORS[name](message)
    error = RuntimeError(f"training {job.run_dir} failed in its process: {name}: {message}")
    error.__cause__ = ChildTraceback(child_traceback)
    return error
