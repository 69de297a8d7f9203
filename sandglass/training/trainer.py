"""One training session of a run folder on one rank (:func:`sandglass.training.launch.train` starts it).

A batch whose loss or gradient is not finite makes no update; ``max_nonfinite`` such batches in a row raise
:class:`TrainingStopped`. SIGINT/SIGTERM finish the current batch, save a checkpoint and raise
:class:`TrainingInterrupted`. Decisions that must agree across ranks (stop, skip) are reduced over all of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_

from sandglass.checkpoint import TOKENIZER_FILE, WEIGHTS_FILE, CheckpointError, save_weights, write_run_files
from sandglass.config import RunConfig, TransformerConfig
from sandglass.data.batching import collate, token_budget_batches
from sandglass.data.corpus import DataError, DataSplits
from sandglass.models import build_model
from sandglass.precision import autocast_for, uses_bfloat16
from sandglass.tokenizer import Tokenizer, TokenizerError
from sandglass.training.dataset import (
    batching_lengths,
    encode_split,
    for_task,
    load_run_splits,
    require_budget,
    token_limit,
    tokenizer_for,
)
from sandglass.training.distributed import DistributedContext
from sandglass.training.events import (
    CheckpointSaved,
    StepLogged,
    StepSkipped,
    TrainingCallbacks,
    TrainingInterrupted,
    TrainingResult,
    TrainingStarted,
    TrainingStopped,
    Validated,
)
from sandglass.training.history import CURVE_FILE, METRICS_FILE, MetricsLog, plot_training_curves
from sandglass.training.progress import LogWindow, Progress, remaining_seconds
from sandglass.training.schedule import build_scheduler
from sandglass.training.setup import (
    Objective,
    build_optimizer,
    check_run_dir,
    check_train_config,
    epoch_seed,
    flushed_denormals,
    seed_everything,
)
from sandglass.training.signals import StopSignals
from sandglass.training.state import (
    TRAINER_STATE_FILE,
    capture_rng,
    load_resume_state,
    restore_rng,
    save_resume_state,
)
from sandglass.training.validation import validate

NO_STOP, OUT_OF_TIME, SIGNALLED = 0, 1, 2
FINITE, NONFINITE_LOSS, NONFINITE_GRADIENT = 0, 1, 2
SKIP_REASONS = {NONFINITE_LOSS: "non-finite loss", NONFINITE_GRADIENT: "non-finite gradient norm"}


class Trainer:
    """One training session of a run folder on one rank; :meth:`run` does the whole session."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        context: DistributedContext,
        device: torch.device,
        callbacks: TrainingCallbacks | None,
        data_cache: Path,
        splits: DataSplits | None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        check_train_config(config.train)
        self.config, self.settings = config, config.train
        self.run_dir, self.context, self.device = run_dir, context, device
        self.callbacks = callbacks if callbacks is not None and context.is_main else TrainingCallbacks()
        self.data_cache, self.given_splits, self.given_tokenizer = data_cache, splits, tokenizer
        self.metrics = MetricsLog(run_dir / METRICS_FILE)
        self.signals = StopSignals()
        self.window = LogWindow()
        self.early_stop = False
        self.learning_rate = config.train.lr  # of the latest update
        self.session_start, self.session_start_step = time.monotonic(), 0
        self.last_validated_step: int | None = None
        self.last_checkpoint_step: int | None = None

    def run(self, resume: bool) -> TrainingResult:
        if self.context.is_main:
            check_run_dir(self.run_dir, self.config, resume=resume)
        self._load_data(resume)
        self._main_writes(lambda: write_run_files(self.run_dir, self.config, self.tokenizer))
        self._build(resume)
        self._main_writes(lambda: self.metrics.keep_until(self.progress.step))
        self.callbacks.training_started(
            TrainingStarted(
                run_dir=self.run_dir,
                parameters=sum(parameter.numel() for parameter in self.model.parameters()),
                device=str(self.device),
                bfloat16=uses_bfloat16(self.device, self.settings.precision),
                train_pairs=len(self.train_split),
                valid_pairs=len(self.valid_split),
                resumed_from_step=self.progress.step,
            )
        )
        self.session_start, self.session_start_step = time.monotonic(), self.progress.step
        self.window.reset()
        with self.signals, flushed_denormals():
            return self._finish(self._loop())

    # Setup

    def _load_data(self, resume: bool) -> None:
        splits = self.given_splits
        splits = for_task(splits, self.config.data.task) if splits is not None else load_run_splits(self.config.data)
        tokenizer_bytes = None
        if self.context.is_main:
            tokenizer_bytes = self._main_tokenizer(splits, resume).to_bytes()
        self.tokenizer = Tokenizer.from_bytes(self.context.broadcast(tokenizer_bytes))
        limit = token_limit(self.config)
        self.train_split = encode_split(splits.train, self.tokenizer, limit)
        self.valid_split = encode_split(splits.valid, self.tokenizer, limit)
        for split in (self.train_split, self.valid_split):
            require_budget(split, self.settings.max_tokens)

    def _main_tokenizer(self, splits: DataSplits, resume: bool) -> Tokenizer:
        if not resume:
            if self.given_tokenizer is not None:
                return self.given_tokenizer
            return tokenizer_for(splits, self.config.data, self.data_cache)
        try:
            return Tokenizer.load(self.run_dir / TOKENIZER_FILE)
        except TokenizerError as error:
            raise CheckpointError(str(error)) from None

    def _build(self, resume: bool) -> None:
        seed = self.settings.seed
        seed_everything(seed)
        self.model = build_model(self.config.model, self.tokenizer.vocab_size)
        state = load_resume_state(self.run_dir, self.model) if resume else None
        self.model.to(self.device).train()
        self.optimizer = build_optimizer(self.model, self.settings)
        self.epoch_batches = self._batches_of_epoch(0)
        total_steps = self.settings.max_steps
        if total_steps is None and self.settings.max_epochs is not None:
            total_steps = self.settings.max_epochs * len(self.epoch_batches)
        self.scheduler = build_scheduler(
            self.optimizer,
            schedule=self.settings.schedule,
            warmup_steps=self.settings.warmup_steps,
            total_steps=total_steps,
        )
        smoothing = self.config.model.label_smoothing if isinstance(self.config.model, TransformerConfig) else 0.0
        self.objective = Objective(self.model, label_smoothing=smoothing)
        if self.context.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.objective = DistributedDataParallel(self.objective, device_ids=device_ids)
        if state is None:
            self.progress = Progress()
            if self.context.is_distributed:
                seed_everything(seed + self.context.rank)  # each rank its own dropout masks
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.progress = Progress.from_state(state)
        if self.context.rank < len(state["rng"]) and state["world_size"] == self.context.world_size:
            restore_rng(state["rng"][self.context.rank])
        else:
            seed_everything(seed + self.context.rank + self.progress.step)

    def _batches_of_epoch(self, epoch: int) -> list[list[int]]:
        split = self.train_split
        source_lengths, target_lengths = batching_lengths(split, self.config.model)
        batches = token_budget_batches(
            source_lengths, target_lengths, self.settings.max_tokens, seed=epoch_seed(self.settings.seed, epoch)
        )
        shard = self.context.shard(batches)
        if not shard:
            raise DataError(
                f"{len(batches)} batches are too few for {self.context.world_size} processes; lower max_tokens"
            )
        return shard

    # The loop

    def _loop(self) -> str:
        progress, max_epochs = self.progress, self.settings.max_epochs
        while max_epochs is None or progress.epoch < max_epochs:
            self.epoch_batches = self._batches_of_epoch(progress.epoch)
            while progress.batch_in_epoch < len(self.epoch_batches):
                reason = self._stop_reason()
                if reason is not None:
                    return reason
                indices = self.epoch_batches[progress.batch_in_epoch]
                progress.batch_in_epoch += 1
                if self._train_step(indices):
                    self._after_update()
                    if self.early_stop:
                        return "early_stopping"
            progress.epoch += 1
            progress.batch_in_epoch = 0
        return "max_epochs"

    def _stop_reason(self) -> str | None:
        if self.settings.max_steps is not None and self.progress.step >= self.settings.max_steps:
            return "max_steps"
        out_of_time = self.settings.max_time is not None and self._elapsed() >= self.settings.max_time
        local = SIGNALLED if self.signals.received else OUT_OF_TIME if out_of_time else NO_STOP
        agreed = self.context.maximum(local, self.device)
        return {NO_STOP: None, OUT_OF_TIME: "max_time", SIGNALLED: "signal"}[agreed]

    def _train_step(self, indices: list[int]) -> bool:
        """One batch: forward, backward, clip, update. False when the batch was skipped as non-finite."""
        split = self.train_split
        sources, targets = [split.source_ids[i] for i in indices], [split.target_ids[i] for i in indices]
        batch = collate(sources, targets, self.tokenizer.pad_id, indices).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_for(self.device, self.settings.precision):
            loss = self.objective(batch.src, batch.src_mask, batch.tgt, batch.tgt_mask)
        # Backward even for a non-finite loss, so every DDP rank takes part in the gradient all-reduce.
        loss.backward()
        clip_norm = self.settings.clip_norm if self.settings.clip_norm > 0 else math.inf
        gradient_norm = clip_grad_norm_(self.model.parameters(), clip_norm)
        loss_value = float(loss.detach())
        local = FINITE
        if not math.isfinite(loss_value):
            local = NONFINITE_LOSS
        elif not torch.isfinite(gradient_norm):
            local = NONFINITE_GRADIENT
        problem = self.context.maximum(local, self.device)
        if problem != FINITE:
            self._skip(SKIP_REASONS[problem])
            return False
        self.learning_rate = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.progress.step += 1
        self.progress.nonfinite_in_row = 0
        target_tokens = sum(map(len, targets))
        self.window.add(loss_value, sum(map(len, sources)) + target_tokens, target_tokens)
        return True

    def _skip(self, reason: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        progress = self.progress
        progress.nonfinite_in_row += 1
        progress.nonfinite_total += 1
        step = progress.step + 1  # the update this batch was for
        self._main_writes(lambda: self.metrics.append({"event": "skipped", "step": step, "reason": reason}))
        self.callbacks.step_skipped(StepSkipped(step, reason))
        if progress.nonfinite_in_row >= self.settings.max_nonfinite:
            raise TrainingStopped(
                f"training stopped: {progress.nonfinite_in_row} batches in a row had a {reason} (the last one "
                f"for step {step}); the last checkpoint in {self.run_dir} is intact; lower the learning rate or "
                "check the data, then resume"
            )

    def _after_update(self) -> None:
        step = self.progress.step
        if step % self.settings.log_every == 0:
            self._log()
        if step % self.settings.validate_every == 0:
            self._validate()
        if step % self.settings.checkpoint_every == 0:
            self._checkpoint()

    # Reporting, validation and checkpoints

    def _log(self) -> None:
        elapsed = self._elapsed()
        event = StepLogged(
            step=self.progress.step,
            epoch=self.progress.epoch + 1,
            loss=self.window.mean_loss,
            tokens_per_second=self.window.tokens_per_second() * self.context.world_size,
            learning_rate=self.learning_rate,
            elapsed=elapsed,
            eta_seconds=self._eta(elapsed),
            target_tokens_per_second=self.window.target_tokens_per_second() * self.context.world_size,
        )
        self._main_writes(lambda: self.metrics.append({"event": "step", **asdict(event)}))
        self.callbacks.step_logged(event)
        self.window.reset()

    def _eta(self, elapsed: float) -> float | None:
        progress, settings = self.progress, self.settings
        session_steps = progress.step - self.session_start_step
        seconds_per_step = (time.monotonic() - self.session_start) / session_steps if session_steps else None
        batches_left = None
        if settings.max_epochs is not None:
            epochs_left = settings.max_epochs - progress.epoch
            batches_left = epochs_left * len(self.epoch_batches) - progress.batch_in_epoch
        steps_left = None if settings.max_steps is None else settings.max_steps - progress.step
        time_left = None if settings.max_time is None else settings.max_time - elapsed
        return remaining_seconds(seconds_per_step, steps_left, batches_left, time_left)

    def _validate(self) -> None:
        """Rank 0 validates and shares the result, so every rank takes the same early-stopping decision."""
        result = None
        if self.context.is_main:
            result = validate(
                self.model,
                self.valid_split,
                self.tokenizer,
                device=self.device,
                max_tokens=self.settings.max_tokens,
                precision=self.settings.precision,
            )
            result = (result.loss, result.bleu, result.exact_match)
        loss, bleu, exact = self.context.broadcast(result)
        progress = self.progress
        is_best = progress.best_bleu is None or bleu > progress.best_bleu
        if is_best:
            progress.best_bleu, progress.bad_validations = bleu, 0
        else:
            progress.bad_validations += 1
        patience = self.settings.patience
        self.early_stop = patience is not None and progress.bad_validations >= patience
        self.last_validated_step = progress.step
        event = Validated(step=progress.step, loss=loss, bleu=bleu, exact_match=exact, is_best=is_best)

        def write() -> None:
            if is_best:
                save_weights(self.model, self.run_dir / WEIGHTS_FILE)
            self.metrics.append({"event": "validation", **asdict(event)})
            plot_training_curves(self.metrics.records(), self.run_dir / CURVE_FILE)

        self._main_writes(write)
        self.callbacks.validated(event)

    def _checkpoint(self) -> Path:
        """Write the resume checkpoint (rank 0), with the RNG states of every rank; returns the state file."""
        rng_states = self.context.gather(capture_rng())
        state = {
            **self.progress.to_state(self._elapsed()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_states,
            "world_size": self.context.world_size,
        }
        step = self.progress.step

        def write() -> None:
            path = save_resume_state(self.run_dir, self.model, state)
            self.callbacks.checkpoint_saved(CheckpointSaved(path, step))

        self._main_writes(write)
        self.last_checkpoint_step = step
        return self.run_dir / TRAINER_STATE_FILE

    def _finish(self, reason: str) -> TrainingResult:
        step = self.progress.step
        if reason == "signal":
            path = self._checkpoint() if self.last_checkpoint_step != step else self.run_dir / TRAINER_STATE_FILE
            raise TrainingInterrupted(path, self.signals.received or "SIGTERM")
        if self.last_validated_step != step:
            self._validate()
        if self.last_checkpoint_step != step:
            self._checkpoint()
        result = TrainingResult(
            run_dir=self.run_dir,
            steps=step,
            epochs=self.progress.epoch,
            best_bleu=self.progress.best_bleu,
            stopped_because=reason,
            elapsed=self._elapsed(),
        )
        self.callbacks.training_finished(result)
        return result

    def _elapsed(self) -> float:
        return self.progress.elapsed_before + time.monotonic() - self.session_start

    def _main_writes(self, write: Callable[[], None]) -> None:
        """Run ``write`` on rank 0; if it fails, every rank raises, so none waits for the others forever."""
        failure = None
        if self.context.is_main:
            try:
                write()
            except CheckpointError as error:
                failure = error
        if self.context.any(failure is not None, self.device):
            raise failure or CheckpointError(f"rank 0 could not write to {self.run_dir}; see its error")
