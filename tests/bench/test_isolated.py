"""Training in a child process: events come back, the result comes back, errors are raised again here."""

import dataclasses
import threading
from pathlib import Path

import pytest

from sandglass.bench.isolated import TrainingJob, TrainingRecorder, peak_rss_mib, train_in_child, watch_parent
from sandglass.config import DataConfig, RunConfig, TrainConfig, preset
from sandglass.data.corpus import DataError
from sandglass.data.loading import load_splits
from sandglass.tokenizer import Tokenizer
from sandglass.training import StepLogged, TrainingCallbacks, TrainingStarted, Validated


class Collector(TrainingCallbacks):
    def __init__(self):
        self.events = []

    def training_started(self, event):
        self.events.append(event)

    def step_logged(self, event):
        self.events.append(event)

    def validated(self, event):
        self.events.append(event)


def copy_task_job(tmp_path: Path, **data) -> TrainingJob:
    splits = load_splits("copy", train_size=100, eval_size=10)
    tokenizer = Tokenizer.train(splits.train.source, vocab_size=100, model_type="word")
    tokenizer.save(tmp_path / "tokenizer.model")
    settings = TrainConfig(
        max_tokens=256, max_steps=4, log_every=1, validate_every=2, checkpoint_every=100, device="cpu"
    )
    data_config = dataclasses.replace(DataConfig(dataset="copy", vocab_size=100, max_length=12), **data)
    config = RunConfig(model=preset("transformer-tiny").model, data=data_config, train=settings)
    return TrainingJob(config, tmp_path / "run", tmp_path / "tokenizer.model", threads=1)


def test_child_trains_reports_its_events_and_its_own_memory(tmp_path):
    collector = Collector()
    trained = train_in_child(copy_task_job(tmp_path), collector)
    assert trained.result.steps == 4 and trained.result.stopped_because == "max_steps"
    kinds = [type(event) for event in collector.events]
    assert kinds[0] is TrainingStarted and kinds.count(StepLogged) == 4 and kinds.count(Validated) == 2
    assert trained.parameters == collector.events[0].parameters > 0
    assert [point.step for point in trained.curve] == [2, 4] and len(trained.window_rates) == 4
    assert all(rate > 0 for rate in trained.window_rates)
    assert trained.peak_rss_mib is not None and trained.peak_rss_mib > 50
    assert (tmp_path / "run" / "tokenizer.model").read_bytes() == (tmp_path / "tokenizer.model").read_bytes()


def test_a_data_error_in_the_child_is_raised_here_with_its_message(tmp_path):
    job = copy_task_job(tmp_path, dataset=str(tmp_path / "missing.tsv"))
    with pytest.raises(DataError, match="missing.tsv"):
        train_in_child(job, TrainingCallbacks())


def test_recorder_stamps_validations_and_keeps_window_rates():
    forwarded = Collector()
    recorder = TrainingRecorder(forwarded)
    recorder.training_started(TrainingStarted(Path("run"), 123, "cpu", 10, 2, 0))
    recorder.step_logged(StepLogged(1, 1, 2.0, 900.0, 1e-3, 0.1, None, target_tokens_per_second=400.0))
    recorder.validated(Validated(1, 1.5, 7.0, 0.0, True))
    assert recorder.parameters == 123 and recorder.window_rates == [400.0]
    assert [(point.step, point.bleu) for point in recorder.curve] == [(1, 7.0)] and recorder.curve[0].seconds >= 0
    assert len(forwarded.events) == 3


def test_peak_memory_is_reported_in_mebibytes():
    assert 10 < peak_rss_mib() < 1_000_000


def test_parent_watch_waits_while_the_parent_lives_and_fires_once_it_is_gone():
    parent = [41]
    orphaned = threading.Event()
    watcher = watch_parent(41, orphaned.set, current_parent=lambda: parent[0], poll_seconds=0.01)
    assert not orphaned.wait(timeout=0.2)
    parent[0] = 1  # reparented: the bench is gone
    watcher.join(timeout=5)
    assert orphaned.is_set() and not watcher.is_alive()
