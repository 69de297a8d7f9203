"""Training losses for the sequence models, each reported as a mean per target token with its summed NLL."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    """``loss``: mean per real target token, differentiable; ``nll_sum``: summed negative log-likelihood of
    the targets (no smoothing), for perplexity; ``num_tokens``: real target tokens."""

    loss: torch.Tensor
    nll_sum: float
    num_tokens: int


def _float_log_softmax(logits: torch.Tensor) -> torch.Tensor:
    # Half-precision logits are normalized in float32; float32/float64 keep their dtype.
    dtype = torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else None
    return F.log_softmax(logits, dim=-1, dtype=dtype)


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
    log_probs = _float_log_softmax(logits)
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(dim=-1)
    weights = target_mask.to(log_probs.dtype)
    num_tokens = int(target_mask.sum())
    per_token = (1.0 - smoothing) * nll + smoothing * uniform
    loss = (per_token * weights).sum() / max(num_tokens, 1)
    return LossOutput(loss=loss, nll_sum=float((nll.detach() * weights).sum()), num_tokens=num_tokens)


def ctc_loss(
    log_probs: torch.Tensor,
    output_mask: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    blank: int = 0,
) -> LossOutput:
    """CTC loss ``-log Σ_{π: B(π)=y} Π_t p_t(π_t)``, summed over the batch, divided by the real target tokens.

    ``log_probs`` must be log-softmax outputs. A target that no alignment can produce (longer than the output)
    contributes 0 and no gradient (``zero_infinity=True``) rather than ``inf``/NaN.

    Shape:
        log_probs: (B, T, V), output_mask: (B, T), target: (B, S) long, target_mask: (B, S) → LossOutput
    """
    if log_probs.dim() != 3 or output_mask.shape != log_probs.shape[:2]:
        raise ValueError(
            f"expected log_probs (B, T, V) and output_mask (B, T), got {tuple(log_probs.shape)} "
            f"and {tuple(output_mask.shape)}"
        )
    if target.dim() != 2 or target_mask.shape != target.shape or target.shape[0] != log_probs.shape[0]:
        raise ValueError(
            f"expected target and target_mask of shape (B={log_probs.shape[0]}, S), "
            f"got {tuple(target.shape)} and {tuple(target_mask.shape)}"
        )
    output_lengths = output_mask.sum(dim=1)
    target_lengths = target_mask.sum(dim=1)
    summed = F.ctc_loss(
        log_probs.transpose(0, 1),
        target,
        output_lengths,
        target_lengths,
        blank=blank,
        reduction="sum",
        zero_infinity=True,
    )
    num_tokens = int(target_lengths.sum())
    return LossOutput(loss=summed / max(num_tokens, 1), nll_sum=float(summed.detach()), num_tokens=num_tokens)
