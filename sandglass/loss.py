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


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision values are normalized and summed in float32; float32/float64 keep their dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _float_log_softmax(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=-1, dtype=_accumulation_dtype(logits.dtype))


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


def _check_ctc_shapes(
    frames: torch.Tensor, output_mask: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor
) -> None:
    if frames.dim() != 3 or output_mask.shape != frames.shape[:2]:
        raise ValueError(
            f"expected frames (B, T, V) and output_mask (B, T), got {tuple(frames.shape)} "
            f"and {tuple(output_mask.shape)}"
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
    _check_ctc_shapes(log_probs, output_mask, target, target_mask)
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


def ctc_loss_from_logits(
    logits: torch.Tensor,
    output_mask: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    blank: int = 0,
    gradient_in_place: bool = False,
) -> LossOutput:
    """:func:`ctc_loss` of ``log_softmax(logits)``, without the log-softmax over the whole vocabulary.

    The CTC recursions read only the blank and the target's labels, so the loss runs on those ``L + 1`` columns
    of each sentence, normalized by a log-sum-exp over the vocabulary; the gradient ``softmax(logits) − γ``
    (``γ_t(v)``: the posterior share of alignments that emit ``v`` at frame ``t``) is written in one pass per
    block of frames. The log-softmax, its backward and a float32 copy of the largest tensor of the model are
    never formed. ``logits`` of shape (B, T, V) that are a transposed view of a time-major tensor (as
    :class:`~sandglass.models.SandGlass` gives them) are read in place.

    With ``gradient_in_place`` the backward pass writes the gradient over the logits instead of into a new tensor
    of their size, whose first writes cost a page fault every few kilobytes; for logits that nothing reads after
    the backward pass (a second backward through the same graph raises autograd's in-place error).

    Shape:
        logits: (B, T, V), output_mask: (B, T), target: (B, S) long, target_mask: (B, S) → LossOutput
    """
    _check_ctc_shapes(logits, output_mask, target, target_mask)
    output_lengths = output_mask.sum(dim=1)
    target_lengths = target_mask.sum(dim=1)
    time_major = logits.transpose(0, 1).contiguous()
    per_sentence = _CTCFromLogits.apply(time_major, output_lengths, target, target_lengths, blank, gradient_in_place)
    summed = per_sentence.sum()
    num_tokens = int(target_lengths.sum())
    return LossOutput(loss=summed / max(num_tokens, 1), nll_sum=float(summed.detach()), num_tokens=num_tokens)


# Elements of the vocabulary-sized tensors handled at once: a block of rows stays in cache between its passes
# (on CPU, 16 rows of 8k are several times faster than whole frames).
_BLOCK_ELEMENTS = 1 << 17


class _CTCFromLogits(torch.autograd.Function):
    """Per-sentence CTC losses of time-major ``logits`` (T, B, V); infeasible sentences give 0 and no gradient."""

    @staticmethod
    def forward(
        ctx,
        logits: torch.Tensor,
        output_lengths: torch.Tensor,
        target: torch.Tensor,
        target_lengths: torch.Tensor,
        blank: int,
        gradient_in_place: bool,
    ) -> torch.Tensor:
        frames, _, vocab = logits.shape
        rows = logits.view(-1, vocab)  # one row per (frame, sentence)
        block = max(1, _BLOCK_ELEMENTS // vocab)
        accumulate = _accumulation_dtype(logits.dtype)
        log_norm = torch.cat([torch.logsumexp(part.to(accumulate), dim=-1) for part in rows.split(block)])
        log_norm = log_norm.view(logits.shape[:2])
        columns = torch.cat([torch.full_like(target[:, :1], blank), target], dim=1)  # (B, 1 + S)
        gathered = logits.gather(-1, columns.unsqueeze(0).expand(frames, -1, -1))
        small = gathered.to(accumulate) - log_norm.unsqueeze(-1)  # log p_t of the blank and each target label
        # Column k + 1 holds target position k; equal labels share the column of their first occurrence, so
        # that CTC's rule for a repeated label (a blank between two equal labels) still applies.
        same = target.unsqueeze(2) == target.unsqueeze(1)
        small_target = same.int().argmax(dim=2) + 1
        with torch.enable_grad():
            leaf = small.detach().requires_grad_()
            losses = F.ctc_loss(
                leaf, small_target, output_lengths, target_lengths, blank=0, reduction="none", zero_infinity=True
            )
            (grad_small,) = torch.autograd.grad(losses.sum(), leaf)
        # PyTorch's CTC backward gives exp(log p) − γ, the gradient through the log-softmax it assumes; the
        # occupancies are what remains. tests/test_loss.py checks the whole gradient against ctc_loss.
        occupancy = small.exp() - grad_small
        real = torch.arange(1, target.shape[1], device=target.device) < target_lengths.unsqueeze(1)
        repeats = ((target[:, 1:] == target[:, :-1]) & real).sum(dim=1)
        feasible = output_lengths >= target_lengths + repeats
        real_frames = torch.arange(frames, device=logits.device).unsqueeze(1) < output_lengths.unsqueeze(0)
        ctx.save_for_backward(logits, columns, occupancy, feasible, real_frames)
        ctx.gradient_in_place = gradient_in_place
        return losses.detach()

    @staticmethod
    def backward(ctx, grad_losses: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, columns, occupancy, feasible, real_frames = ctx.saved_tensors
        weight = (real_frames * (grad_losses * feasible).unsqueeze(0)).view(-1, 1)  # (T·B, 1)
        vocab = logits.shape[-1]
        grad = logits if ctx.gradient_in_place else torch.empty_like(logits)
        block = max(1, _BLOCK_ELEMENTS // vocab)
        columns = columns.unsqueeze(0).expand(logits.shape[0], -1, -1).reshape(-1, columns.shape[-1])
        parts = zip(
            logits.view(-1, vocab).split(block),
            grad.view(-1, vocab).split(block),
            columns.split(block),
            occupancy.view(-1, occupancy.shape[-1]).split(block),
            weight.split(block),
            strict=True,
        )
        for part, part_grad, part_columns, part_occupancy, part_weight in parts:
            probs = torch.softmax(part, dim=-1, dtype=occupancy.dtype)  # read before part_grad may overwrite part
            probs.scatter_add_(-1, part_columns, -part_occupancy)
            part_grad.copy_(probs.mul_(part_weight))
        return grad, None, None, None, None, None
