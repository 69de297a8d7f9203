"""The training loop: its records, stopping rules, non-finite steps, and learning on a synthetic task."""

import json

import pytest
import torch

import sandglass.training.setup
from sandglass.config import ConfigError
from sandglass.data.batching import token_budget_batches
from sandglass.loss import LossOutput
from sandglass.tokenizer import Tokenizer
from sandglass.training import TrainingCallbacks, TrainingStopped, train
from sandglass.training.setup import epoch_seed
from sandglass.training.state import read_resume_state
from tests.training.runs import SPLITS, resume_weights, run_config, with_train


class Recorder(TrainingCallbacks):
    def __init__(self) -> None:
        self.events = []

    def training_started(self, event) -> None:
        self.events.append(event)

    def step_logged(self, event) -> None:
        self.events.append(event)

    def validated(self, event) -> None:
        self.events.append(event)

    def checkpoint_saved(self, event) -> None:
        self.events.append(event)

    def step_skipped(self, event) -> None:
        self.events.append(event)

    def training_finished(self, result) -> None:
        self.events.append(result)

    def of(self, kind: str) -> list:
        return [event for event in self.events if type(event).__name__ == kind]


def run(config, run_dir, data_cache, **options):
    return train(config, run_dir, splits=SPLITS, data_cache=data_cache, **options)


def test_a_run_writes_its_files_metrics_and_curve(tmp_path, data_cache):
    recorder = Recorder()
    config = run_config(max_steps=6, log_every=2, validate_every=3, checkpoint_every=3)
    result = run(config, tmp_path, data_cache, callbacks=recorder)

    assert (result.steps, result.stopped_because, result.run_dir) == (6, "max_steps", tmp_path)
    expected = {"config.json", "tokenizer.model", "model.safetensors", "trainer.pt", "metrics.jsonl"}
    assert expected | {"training_curve.png", "last-00000006.safetensors"} == {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "training_curve.png").read_bytes().startswith(b"\x89PNG")

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["event"], r["step"]) for r in records] == [
        ("step", 2), ("validation", 3), ("step", 4), ("step", 6), ("validation", 6),
    ]  # fmt: skip
    assert [e.step for e in recorder.of("StepLogged")] == [2, 4, 6]
    assert [e.step for e in recorder.of("Validated")] == [3, 6]
    assert [e.step for e in recorder.of("CheckpointSaved")] == [3, 6]
    started = recorder.of("TrainingStarted")[0]
    assert started.resumed_from_step == 0 and started.device == "cpu" and started.parameters > 0
    assert started.train_pairs == 90 and started.valid_pairs == 9  # pairs of at most 12 tokens
    logged = recorder.of("StepLogged")[-1]
    assert logged.eta_seconds == 0.0 and logged.tokens_per_second > 0 and logged.loss > 0
    validated = recorder.of("Validated")
    assert validated[0].is_best and 0 <= validated[0].bleu <= 100 and validated[0].loss > 0
    assert result.best_bleu == max(event.bleu for event in validated)
    assert recorder.of("TrainingResult") == [result] and recorder.events[-1] is result


def test_validation_scores_the_greedy_outputs_against_the_targets(tmp_path, data_cache, monkeypatch):
    import sandglass.training.validation

    monkeypatch.setattr(sandglass.training.validation, "generate", lambda model, src, mask: src.tolist())
    recorder = Recorder()
    run(run_config(max_steps=1), tmp_path, data_cache, callbacks=recorder)
    validated = recorder.of("Validated")[0]  # outputs that copy the source are right on the copy task
    assert (validated.bleu, validated.exact_match) == pytest.approx((100.0, 100.0))


def test_the_learning_rate_warms_up_then_decays(tmp_path, data_cache):
    recorder = Recorder()
    run(run_config(max_steps=8, warmup_steps=4, lr=1e-3), tmp_path, data_cache, callbacks=recorder)
    rates = [event.learning_rate for event in recorder.of("StepLogged")]
    expected = [1e-3 * n / 4 for n in range(1, 4)] + [1e-3 * (4 / n) ** 0.5 for n in range(4, 9)]
    assert rates == pytest.approx(expected, rel=1e-9)


def test_max_epochs_stops_after_whole_epochs(tmp_path, data_cache):
    result = run(run_config(max_steps=None, max_epochs=2), tmp_path, data_cache)
    tokenizer = Tokenizer.load(tmp_path / "tokenizer.model")
    source = [ids for ids in tokenizer.encode(SPLITS.train.source) if len(ids) <= 12]
    lengths = [len(ids) for ids in source]
    per_epoch = [len(token_budget_batches(lengths, lengths, 256, seed=epoch_seed(1, e))) for e in range(2)]
    assert (result.stopped_because, result.epochs, result.steps) == ("max_epochs", 2, sum(per_epoch))
    assert read_resume_state(tmp_path)["epoch"] == 2


def test_max_time_stops_training(tmp_path, data_cache):
    result = run(run_config(max_steps=None, max_time=0.0), tmp_path, data_cache)
    assert (result.stopped_because, result.steps) == ("max_time", 0)


def test_early_stopping_after_patience_validations_without_improvement(tmp_path, data_cache):
    recorder = Recorder()
    config = run_config(max_steps=50, lr=1e-12, validate_every=1, patience=2)
    result = run(config, tmp_path, data_cache, callbacks=recorder)
    assert (result.stopped_because, result.steps) == ("early_stopping", 3)
    assert [event.is_best for event in recorder.of("Validated")] == [True, False, False]


def nan_loss_for_calls(calls: set[int], monkeypatch) -> None:
    """Make the training loss NaN on the given forward calls (counting from 1)."""
    original = sandglass.training.setup.compute_loss
    counter = {"calls": 0}

    def flaky(model, batch, **options):
        counter["calls"] += 1
        output = original(model, batch, **options)
        if counter["calls"] in calls:
            return LossOutput(output.loss * float("nan"), output.nll_sum, output.num_tokens)
        return output

    monkeypatch.setattr(sandglass.training.setup, "compute_loss", flaky)


def test_a_nonfinite_loss_skips_the_update_and_is_counted(tmp_path, data_cache, monkeypatch):
    nan_loss_for_calls({3}, monkeypatch)
    recorder = Recorder()
    result = run(run_config(max_steps=6), tmp_path, data_cache, callbacks=recorder)
    assert result.steps == 6
    assert [(event.step, event.reason) for event in recorder.of("StepSkipped")] == [(3, "non-finite loss")]
    state = read_resume_state(tmp_path)
    assert (state["nonfinite_total"], state["nonfinite_in_row"]) == (1, 0)
    adam_steps = {float(value["step"]) for value in state["optimizer"]["state"].values()}
    assert adam_steps == {6.0}  # 7 batches, 6 updates
    assert all(torch.isfinite(value).all() for value in resume_weights(tmp_path).values())
    skipped = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"event": "skipped", "step": 3, "reason": "non-finite loss"} in skipped


def test_too_many_nonfinite_losses_in_a_row_stop_with_the_checkpoint_intact(tmp_path, data_cache, monkeypatch):
    config = run_config(max_steps=4, checkpoint_every=2, max_nonfinite=3)
    run(config, tmp_path, data_cache)
    nan_loss_for_calls(set(range(3, 100)), monkeypatch)
    with pytest.raises(TrainingStopped, match="3 batches in a row had a non-finite loss"):
        run(with_train(config, max_steps=10), tmp_path, data_cache, resume=True)
    assert read_resume_state(tmp_path)["step"] == 6  # the last good checkpoint: steps 5 and 6 were fine


def test_invalid_training_settings_raise_config_errors(tmp_path, data_cache):
    with pytest.raises(ConfigError, match="train.log_every"):
        run(run_config(log_every=0), tmp_path, data_cache)
    with pytest.raises(ConfigError, match="cosine schedule needs max_steps or max_epochs"):
        run(run_config(max_steps=None, schedule="cosine"), tmp_path, data_cache)
    with pytest.raises(ConfigError, match="unknown device"):
        run(run_config(device="toaster"), tmp_path, data_cache)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_tiny_sandglass_learns_to_copy(tmp_path, data_cache, precision):
    recorder = Recorder()
    config = run_config("tiny", max_steps=40, log_every=10, lr=3e-3, warmup_steps=10, precision=precision)
    run(config, tmp_path, data_cache, callbacks=recorder)
    assert recorder.of("TrainingStarted")[0].bfloat16 is (precision == "bfloat16")
    losses = [event.loss for event in recorder.of("StepLogged")]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
