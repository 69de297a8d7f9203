"""CTC on log-probabilities: the reference that the fast CTC paths are tested against."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sandglass.loss.output import LossOutput, per_target_token


def check_ctc_shapes(
    frames: torch.Tensor,
    output_mask: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    frames_name: str = "frames (B, T, V)",
) -> None:
    """Raise a ``ValueError`` naming the expected shapes unless the frames, masks and targets agree."""
    if frames.dim() != 3 or output_mask.shape != frames.shape[:2]:
        raise ValueError(
            f"expected {frames_name} and output_mask (B, T), got {tuple(frames.shape)} and {tuple(output_mask.shape)}"
        )
    if target.dim() != 2 or target_mask.shape != target.shape or target.shape[0] != frames.shape[0]:
        raise ValueError(
            f"expected target and target_mask of shape (B={frames.shape[0]}, S), "
            f"got {tuple(target.shape)} and {tuple(target_mask.shape)}"
        )


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
    check_ctc_shapes(log_probs, output_mask, target, target_mask)
    target_lengths = target_mask.sum(dim=1)
    summed = F.ctc_loss(
        log_probs.transpose(0, 1),
        target,
        output_mask.sum(dim=1),
        target_lengths,
        blank=blank,
        reduction="sum",
        zero_infinity=True,
    )
    return per_target_token(summed, target_lengths)
