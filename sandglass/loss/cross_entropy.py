"""Label-smoothed cross-entropy: the Transformer's teacher-forced training loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sandglass.loss.output import LossOutput, accumulation_dtype


def label_smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor, *, smoothing: float = 0.1
) -> LossOutput:
    """Cross-entropy against ``(1-ε)·onehot(y) + ε/V`` (the ``label_smoothing`` of ``F.cross_entropy``):
    ``ℓ_t = (1-ε)·(-log p_t(y_t)) + ε·mean_v(-log p_t(v))``, averaged over the real target tokens.

    Shape:
        logits: (B, T, V), target: (B, T) long, target_mask: (B, T) bool → LossOutput
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if logits.dim() != 3 or target.shape != logits.shape[:2] or target_mask.shape != target.shape:
        raise ValueError(
            "expected logits (B, T, V), target (B, T) and target_mask (B, T), got "
            f"{tuple(logits.shape)}, {tuple(target.shape)} and {tuple(target_mask.shape)}"
        )
    log_probs = F.log_softmax(logits, dim=-1, dtype=accumulation_dtype(logits.dtype))
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(dim=-1)
    weights = target_mask.to(log_probs.dtype)
    num_tokens = int(target_mask.sum())
    per_token = (1.0 - smoothing) * nll + smoothing * uniform
    loss = (per_token * weights).sum() / max(num_tokens, 1)
    return LossOutput(loss=loss, nll_sum=float((nll.detach() * weights).sum()), num_tokens=num_tokens)
