"""What every loss returns, and the precision its sums are taken in."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossOutput:
    """``loss``: mean per real target token, differentiable; ``nll_sum``: summed negative log-likelihood of
    the targets (no smoothing), for perplexity; ``num_tokens``: real target tokens."""

    loss: torch.Tensor
    nll_sum: float
    num_tokens: int


def per_target_token(summed: torch.Tensor, target_lengths: torch.Tensor) -> LossOutput:
    """A loss summed over the batch, as the mean per real target token."""
    num_tokens = int(target_lengths.sum())
    return LossOutput(loss=summed / max(num_tokens, 1), nll_sum=float(summed.detach()), num_tokens=num_tokens)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision values are normalized and summed in float32; float32/float64 keep their dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
