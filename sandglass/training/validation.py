"""Validation during training: per-token loss, then greedy outputs scored with sacreBLEU and exact match."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sandglass.data.batching import iterate_batches, token_budget_batches
from sandglass.inference import generate
from sandglass.metrics import exact_match, score_corpus
from sandglass.objective import compute_loss
from sandglass.precision import autocast_for
from sandglass.tokenizer import Tokenizer
from sandglass.training.dataset import EncodedSplit


@dataclass(frozen=True)
class ValidationResult:
    """``loss``: NLL per target token (no label smoothing); ``bleu`` and ``exact_match`` on the 0–100 scale."""

    loss: float
    bleu: float
    exact_match: float
    hypotheses: list[str]


@torch.no_grad()
def validate(
    model: nn.Module,
    split: EncodedSplit,
    tokenizer: Tokenizer,
    *,
    device: torch.device,
    max_tokens: int,
    precision: str = "auto",
) -> ValidationResult:
    """Score ``model`` (not a DDP wrapper) on ``split`` in eval mode, leaving its mode and every RNG as found."""
    was_training = model.training
    model.eval()
    batches = token_budget_batches(
        [len(ids) for ids in split.source_ids], [len(ids) for ids in split.target_ids], max_tokens, shuffle=False
    )
    hypotheses = [""] * len(split)
    nll_sum, num_tokens = 0.0, 0
    cuda_devices = [device] if device.type == "cuda" else []
    try:
        # fork_rng: validating must not change the training randomness. One autocast context for all batches
        # casts each weight to bf16 once, not once per batch.
        with torch.random.fork_rng(devices=cuda_devices), autocast_for(device, precision):
            for batch in iterate_batches(split.source_ids, split.target_ids, batches, tokenizer.pad_id):
                batch = batch.to(device)
                output = compute_loss(model, batch, label_smoothing=0.0)
                ids = generate(model, batch.src, batch.src_mask)
                nll_sum += output.nll_sum
                num_tokens += output.num_tokens
                for index, text in zip(batch.indices.tolist(), tokenizer.decode(ids), strict=True):
                    hypotheses[index] = text
    finally:
        model.train(was_training)
    scores = score_corpus(hypotheses, split.references)
    return ValidationResult(
        loss=nll_sum / max(num_tokens, 1),
        bleu=scores.bleu,
        exact_match=exact_match(hypotheses, split.references),
        hypotheses=hypotheses,
    )
