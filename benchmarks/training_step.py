"""Training target tokens/s of presets on the same Multi30k batches, without validation or checkpoints.

Run: ``python benchmarks/training_step.py [--presets base transformer-base] [--batches 22] [--threads 2]``.
The batches are the first ``--batches`` of the training batch list (4,096-token budget, the presets' own) built
from the first ``--pairs`` pairs of ``train`` (6,000; 29,000 is all of it) with the shared 8,000-piece
tokenizer (cached in ``--cache``); the first two steps are warm-up and not counted. ``--loss reference`` trains
SandGlass with the plain ``ctc_loss`` on ``log_softmax`` instead of :func:`sandglass.loss.ctc_loss_from_features`,
to measure what the fused loss saves.
Precision is the training default (``auto``: bf16 autocast where the CPU has bf16 units).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sandglass.config import DataConfig, preset
from sandglass.data.batching import Batch, collate, token_budget_batches
from sandglass.data.loading import load_splits
from sandglass.loss import ctc_loss
from sandglass.models.build import build_model
from sandglass.models.sandglass import SandGlass
from sandglass.objective import compute_loss
from sandglass.precision import autocast_for, uses_bfloat16
from sandglass.training.dataset import tokenizer_for
from sandglass.training.setup import flushed_denormals

WARMUP_STEPS = 2


def step_loss(model: torch.nn.Module, batch: Batch, reference_loss: bool) -> torch.Tensor:
    if reference_loss and isinstance(model, SandGlass):
        output = model(batch.src, batch.src_mask)
        return ctc_loss(output.log_probs, output.mask, batch.tgt, batch.tgt_mask, blank=model.blank_id).loss
    return compute_loss(model, batch).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/multi30k", help="Multi30k folder")
    parser.add_argument("--cache", default="data", help="tokenizer cache folder")
    parser.add_argument("--presets", nargs="+", default=["base", "transformer-base"])
    parser.add_argument("--batches", type=int, default=22)
    parser.add_argument("--pairs", type=int, default=6_000, help="training pairs the batches are drawn from")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loss", choices=["fused", "reference"], default="fused")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = DataConfig(data_dir=args.data)
    splits = load_splits(data.dataset, src=data.src, tgt=data.tgt, data_dir=data.data_dir)
    tokenizer = tokenizer_for(splits, data, Path(args.cache))
    source = tokenizer.encode(splits.train.source[: args.pairs])
    target = tokenizer.encode(splits.train.target[: args.pairs])
    device = torch.device("cpu")
    print(f"{args.threads} threads, bf16 autocast: {uses_bfloat16(device, 'auto')}, loss: {args.loss}")
    for name in args.presets:
        chosen = preset(name)
        batches = token_budget_batches(
            [len(ids) for ids in source], [len(ids) for ids in target], chosen.train.max_tokens, seed=1
        )[: args.batches]
        torch.manual_seed(0)
        model = build_model(chosen.model, tokenizer.vocab_size).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        tokens, seconds = 0, 0.0
        with flushed_denormals():
            for step, indices in enumerate(batches):
                batch = collate([source[i] for i in indices], [target[i] for i in indices], tokenizer.pad_id, indices)
                start = time.perf_counter()
                with autocast_for(device, "auto"):
                    loss = step_loss(model, batch, args.loss == "reference")
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                if step >= WARMUP_STEPS:
                    seconds += time.perf_counter() - start
                    tokens += int(batch.tgt_mask.sum())
        parameters = sum(p.numel() for p in model.parameters())
        print(
            f"{name:18s} {tokens / seconds:8,.0f} target tok/s   {seconds / (len(batches) - WARMUP_STEPS):6.2f} s/step"
            f"   {parameters / 1e6:.2f}M parameters"
        )


if __name__ == "__main__":
    main()
