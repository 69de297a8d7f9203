"""Entry points of training: in this process, under ``torchrun``, or in an existing process group.

``train`` loads the splits, trains (or reuses the cached) joint tokenizer, encodes and length-filters the pairs,
writes ``config.json`` and ``tokenizer.model``, builds the model and trains it: AdamW, warmup then inverse-sqrt,
cosine or constant learning rate, gradient clipping, token-budget batches reshuffled every epoch with a seed
derived from (seed, epoch). It stops at ``max_steps`` updates, ``max_epochs`` epochs, ``max_time`` seconds or
after ``patience`` validations without a better BLEU. Every ``validate_every`` updates and at the end it
measures validation loss, BLEU and exact match and keeps the best weights in ``model.safetensors``; every
``checkpoint_every`` updates and at the end it writes the resume checkpoint (:mod:`sandglass.training.state`).
``metrics.jsonl`` and ``training_curve.png`` record the run.

A batch whose loss or gradient is not finite makes no update; ``max_nonfinite`` such batches in a row raise
:class:`TrainingStopped`. SIGINT/SIGTERM finish the current batch, save a checkpoint and raise
:class:`TrainingInterrupted`. A resumed run ends with the same parameters as an uninterrupted one.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from sandglass.config import RunConfig
from sandglass.data.corpus import DataSplits
from sandglass.tokenizer import Tokenizer
from sandglass.training.distributed import (
    DistributedContext,
    init_process_group,
    leaving_process_group,
    resolve_device,
)
from sandglass.training.events import TrainingCallbacks, TrainingResult
from sandglass.training.trainer import Trainer


def train(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    callbacks: TrainingCallbacks | None = None,
    data_cache: Path = Path("data"),
    splits: DataSplits | None = None,
    tokenizer: Tokenizer | None = None,
) -> TrainingResult:
    """Train ``config``'s model into ``run_dir``, or continue its checkpoint with ``resume=True``.

    Under ``torchrun`` it joins the process group (nccl on CUDA, gloo on CPU) and trains data-parallel; only
    rank 0 writes files and reports to ``callbacks``. ``splits`` replaces the data set ``config.data`` names;
    ``tokenizer`` replaces the one trained (or cached) for it, for a fresh run (e.g. a teacher's, for distillation).
    Raises TrainingInterrupted, TrainingStopped, CheckpointError, ConfigError or DataError.
    """
    context = DistributedContext.from_environment()
    device = resolve_device(config.train.device, context)
    joined = init_process_group(context, device)
    with leaving_process_group() if joined else nullcontext():
        trainer = Trainer(config, Path(run_dir), context, device, callbacks, Path(data_cache), splits, tokenizer)
        return trainer.run(resume)


def train_in_process_group(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    callbacks: TrainingCallbacks | None = None,
    data_cache: Path = Path("data"),
    splits: DataSplits | None = None,
) -> TrainingResult:
    """:func:`train` on one rank of an already-initialized default process group (tests, custom launchers)."""
    context = DistributedContext.from_process_group()
    device = resolve_device(config.train.device, context)
    return Trainer(config, Path(run_dir), context, device, callbacks, Path(data_cache), splits).run(resume)
