"""CTC without the log-softmax over the vocabulary: from the logits, or from the features before the projection.

The CTC recursions read only the blank and the target's labels, so the loss runs on those ``L + 1`` columns of
each sentence, normalized by a log-sum-exp over the vocabulary; the gradient ``softmax(logits) − γ`` (``γ_t(v)``:
the posterior share of alignments that emit ``v`` at frame ``t``) is written one block of frames at a time, so
that each block stays in cache between its passes. Both give the loss and gradient of :func:`ctc_loss` on
``log_softmax`` (``tests/loss/test_fused_ctc.py``); both are first-order only.

From the features, the blank can also have a gate of its own: with gate logits ``s``,
``log p(blank) = log σ(s)`` and ``log p(v) = log σ(−s) + log_softmax(logits)_v``, whose gradients are
``σ(s)·(γ_blank + N) − γ_blank`` for ``s`` and ``N·softmax(logits) − γ`` for the logits, ``N`` the frame's
occupancy of labels other than the blank.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from sandglass.layers.scratch import scratch
from sandglass.loss.ctc import check_ctc_shapes
from sandglass.loss.output import LossOutput, accumulation_dtype, per_target_token

# Elements of the vocabulary-sized tensors normalized at once, in one reused scratch buffer: a block of rows stays
# in cache between its passes (on a 2-core CPU at V = 8,000, 64 rows beat 16, 128 and 256).
_BLOCK_ELEMENTS = 1 << 19
# Frames projected onto the vocabulary at once by ctc_loss_from_features: of 128, 256 and 512, 256 trained
# fastest on a 2-core CPU at d = 256 and V = 8,000 (enough rows for an efficient product, a block of a few MiB).
_PROJECTION_ROWS = 256
# Blocks whose logit gradients share the products for the gradients of the features and the weight: the weight's,
# summed in float32 across products, is cast and added once per group (a (V, d) matrix each time).
_BLOCKS_PER_PRODUCT = 4


def ctc_loss_from_logits(
    logits: torch.Tensor,
    output_mask: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    blank: int = 0,
) -> LossOutput:
    """:func:`ctc_loss` of ``log_softmax(logits)``, without the log-softmax over the whole vocabulary.

    The log-softmax, its backward and a float32 copy of the logits are never formed. ``logits`` of shape
    (B, T, V) that are a transposed view of a time-major tensor are read in place.

    Shape:
        logits: (B, T, V), output_mask: (B, T), target: (B, S) long, target_mask: (B, S) → LossOutput
    """
    check_ctc_shapes(logits, output_mask, target, target_mask)
    target_lengths = target_mask.sum(dim=1)
    time_major = logits.transpose(0, 1).contiguous()
    per_sentence = _CTCFromLogits.apply(time_major, output_mask.sum(dim=1), target, target_lengths, blank)
    return per_target_token(per_sentence.sum(), target_lengths)


def ctc_loss_from_features(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    output_mask: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    blank: int = 0,
    blank_logits: torch.Tensor | None = None,
) -> LossOutput:
    """:func:`ctc_loss` of ``log_softmax(features · weightᵀ + bias)``, without ever holding the logits.

    The vocabulary projection runs over blocks of frames, and the backward pass projects each block again
    instead of keeping it: the logits, the largest tensor of a training step (``B·T·V``), and their gradient are
    never allocated whole, which on CPU also spares the page faults of first writing a new tensor of that size.
    Under autocast the projection runs in the autocast dtype, as ``F.linear`` would.

    With ``blank_logits`` ``s`` the blank's probability is gated instead, ``p(blank) = σ(s)`` and
    ``p(v) = (1 − σ(s)) · softmax(logits)_v``; the blank's own column of the logits then only takes part in the
    softmax (a bias of -1e9 there leaves it out).

    Shape:
        features: (B, T, d), weight: (V, d), bias: (V,) or None, output_mask: (B, T), target: (B, S) long,
        target_mask: (B, S), blank_logits: (B, T) or None → LossOutput
    """
    check_ctc_shapes(features, output_mask, target, target_mask, frames_name="features (B, T, d)")
    if weight.dim() != 2 or weight.shape[1] != features.shape[-1]:
        raise ValueError(f"expected weight (V, d={features.shape[-1]}), got {tuple(weight.shape)}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"expected bias (V={weight.shape[0]},), got {tuple(bias.shape)}")
    if blank_logits is not None and blank_logits.shape != output_mask.shape:
        raise ValueError(f"expected blank_logits (B, T) = {tuple(output_mask.shape)}, got {tuple(blank_logits.shape)}")
    target_lengths = target_mask.sum(dim=1)
    per_sentence = _CTCFromFeatures.apply(
        features, weight, bias, blank_logits, output_mask.sum(dim=1), target, target_lengths, blank
    )
    return per_target_token(per_sentence.sum(), target_lengths)


def _label_columns(target: torch.Tensor, blank: int) -> torch.Tensor:
    """The vocabulary columns CTC reads for each sentence: the blank, then the target's labels.

    Shape:
        target: (B, S) long → (B, 1 + S) long
    """
    return torch.cat([torch.full_like(target[:, :1], blank), target], dim=1)


def _alignment_posteriors(
    small: torch.Tensor, output_lengths: torch.Tensor, target: torch.Tensor, target_lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sentence CTC losses from the log-probabilities of the blank and each target label, the occupancies
    ``γ`` of those columns, and which frames get a gradient (real frames of sentences an alignment can produce).

    Shape:
        small: (T, B, 1 + S) log-probabilities, column 0 the blank → losses (B,), occupancy (T, B, 1 + S),
        counted (T, B) bool
    """
    # Column k + 1 holds target position k; equal labels share the column of their first occurrence, so that
    # CTC's rule for a repeated label (a blank between two equal labels) still applies.
    same = target.unsqueeze(2) == target.unsqueeze(1)
    small_target = same.int().argmax(dim=2) + 1
    with torch.enable_grad():
        leaf = small.detach().requires_grad_()
        losses = F.ctc_loss(
            leaf, small_target, output_lengths, target_lengths, blank=0, reduction="none", zero_infinity=True
        )
        (grad_small,) = torch.autograd.grad(losses.sum(), leaf)
    # PyTorch's CTC backward gives exp(log p) − γ, the gradient through the log-softmax it assumes; the
    # occupancies are what remains.
    occupancy = small.exp() - grad_small
    real = torch.arange(1, target.shape[1], device=target.device) < target_lengths.unsqueeze(1)
    repeats = ((target[:, 1:] == target[:, :-1]) & real).sum(dim=1)
    feasible = output_lengths >= target_lengths + repeats
    real_frames = torch.arange(small.shape[0], device=small.device).unsqueeze(1) < output_lengths.unsqueeze(0)
    return losses.detach(), occupancy, real_frames & feasible.unsqueeze(0)


def _normalize_rows(logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``log Σ_v exp(logits[r, v])`` of each (finite) row, in ``dtype``, over blocks of rows that stay in cache.

    Each block is copied into one scratch buffer and worked on in place there, so that no vocabulary-sized
    tensor is allocated (on CPU a fresh one costs page faults).

    Shape:
        logits: (R, V) → (R,)
    """
    block = max(1, _BLOCK_ELEMENTS // logits.shape[-1])
    log_norm = torch.empty(logits.shape[0], dtype=dtype, device=logits.device)
    for part, part_norm in zip(logits.split(block), log_norm.split(block), strict=True):
        staged = scratch("ctc_rows", part.shape, log_norm)
        staged.copy_(part)
        top = staged.amax(dim=-1, keepdim=True)
        torch.sum(staged.sub_(top).exp_(), dim=-1, out=part_norm)
        part_norm.log_().add_(top.squeeze(-1))
    return log_norm


def _write_logit_gradient(
    logits: torch.Tensor,
    log_norm: torch.Tensor,
    columns: torch.Tensor,
    occupancy: torch.Tensor,
    weight: torch.Tensor,
    out: torch.Tensor,
    label_share: torch.Tensor | None = None,
) -> None:
    """``out = weight · (N · softmax(logits) − γ)``, with ``γ`` the occupancy scattered onto its columns, block by
    block; ``N`` is ``label_share`` (1 when None). ``softmax(logits) = exp(logits − log_norm)``, with the rows'
    log-normalizers of the forward pass, computed in a scratch buffer.

    Shape:
        logits: (R, V), log_norm: (R,), columns: (R, 1 + S) long, occupancy: (R, 1 + S), weight: (R, 1),
        out: (R, V), label_share: (R, 1) or None
    """
    block = max(1, _BLOCK_ELEMENTS // logits.shape[-1])
    parts = zip(
        logits.split(block),
        log_norm.unsqueeze(-1).split(block),
        out.split(block),
        columns.split(block),
        occupancy.split(block),
        weight.split(block),
        (weight if label_share is None else label_share * weight).split(block),
        strict=True,
    )
    for part, part_norm, part_out, part_columns, part_occupancy, part_weight, part_probs_weight in parts:
        probs = scratch("ctc_rows", part.shape, occupancy)
        probs.copy_(part)
        probs.sub_(part_norm).exp_().mul_(part_probs_weight)
        probs.scatter_add_(-1, part_columns, part_occupancy * -part_weight)
        part_out.copy_(probs)


def _project(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``rows · weightᵀ + bias`` in a scratch buffer, valid until the next call: a fresh block of logits costs
    more in page faults on CPU than the product that fills it.

    Shape:
        rows: (R, d), weight: (V, d), bias: (V,) or None → (R, V)
    """
    out = scratch("ctc_logits", (rows.shape[0], weight.shape[0]), rows)
    if bias is None:
        return torch.mm(rows, weight.t(), out=out)
    return torch.addmm(bias, rows, weight.t(), out=out)


def _accumulate(total: torch.Tensor, part: torch.Tensor) -> None:
    """``total += part`` with ``part`` widened to ``total``'s dtype in a scratch buffer, not in a fresh tensor."""
    if part.dtype != total.dtype:
        part = scratch("ctc_widened", part.shape, total).copy_(part)
    total += part


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
    ) -> torch.Tensor:
        frames, _, vocab = logits.shape
        accumulate = accumulation_dtype(logits.dtype)
        log_norm = _normalize_rows(logits.view(-1, vocab), accumulate).view(logits.shape[:2])
        columns = _label_columns(target, blank)
        gathered = logits.gather(-1, columns.unsqueeze(0).expand(frames, -1, -1))
        small = gathered.to(accumulate) - log_norm.unsqueeze(-1)  # log p_t of the blank and each target label
        losses, occupancy, counted = _alignment_posteriors(small, output_lengths, target, target_lengths)
        ctx.save_for_backward(logits, log_norm, columns, occupancy, counted)
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_losses: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, log_norm, columns, occupancy, counted = ctx.saved_tensors
        frames, _, vocab = logits.shape
        grad = torch.empty_like(logits)
        _write_logit_gradient(
            logits.view(-1, vocab),
            log_norm.view(-1),
            columns.unsqueeze(0).expand(frames, -1, -1).reshape(-1, columns.shape[-1]),
            occupancy.view(-1, occupancy.shape[-1]),
            (counted * grad_losses).view(-1, 1),
            grad.view(-1, vocab),
        )
        return grad, None, None, None, None


class _CTCFromFeatures(torch.autograd.Function):
    """Per-sentence CTC losses of ``features · weightᵀ + bias`` (B, T, V), projected block by block in both passes."""

    @staticmethod
    def forward(
        ctx,
        features: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        blank_logits: torch.Tensor | None,
        output_lengths: torch.Tensor,
        target: torch.Tensor,
        target_lengths: torch.Tensor,
        blank: int,
    ) -> torch.Tensor:
        batch, frames, dim = features.shape
        device_type = features.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
        else:
            dtype = torch.promote_types(features.dtype, weight.dtype)
        ctx.dtypes = (features.dtype, weight.dtype)
        rows = features.reshape(-1, dim).to(dtype)  # batch-major: row b·T + t
        weight, bias = weight.to(dtype), None if bias is None else bias.to(dtype)
        columns = _label_columns(target, blank).repeat_interleave(frames, dim=0)  # (B·T, 1 + S)
        accumulate = accumulation_dtype(dtype)
        block_norms, gathered = [], []
        with torch.autocast(device_type, enabled=False):
            for row_block, column_block in zip(
                rows.split(_PROJECTION_ROWS), columns.split(_PROJECTION_ROWS), strict=True
            ):
                logits = _project(row_block, weight, bias)
                block_norms.append(_normalize_rows(logits, accumulate))
                gathered.append(logits.gather(-1, column_block))
            log_norm = torch.cat(block_norms)
            small = torch.cat(gathered).to(accumulate) - log_norm.unsqueeze(-1)
            gate = None if blank_logits is None else blank_logits.reshape(-1, 1).to(accumulate)
            if gate is not None:
                small = torch.cat([F.logsigmoid(gate), small[:, 1:] + F.logsigmoid(-gate)], dim=1)
            small = small.view(batch, frames, -1).transpose(0, 1)  # time-major, as CTC reads it
            losses, occupancy, counted = _alignment_posteriors(small, output_lengths, target, target_lengths)
        ctx.gate_dtype = None if blank_logits is None else blank_logits.dtype
        ctx.save_for_backward(rows, weight, bias, gate, log_norm, columns, occupancy.transpose(0, 1), counted.t())
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_losses: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, weight, bias, gate, log_norm, columns, occupancy, counted = ctx.saved_tensors
        features_dtype, weight_dtype = ctx.dtypes
        need_features, need_weight, need_bias = ctx.needs_input_grad[:3]
        accumulate = accumulation_dtype(rows.dtype)
        row_weight = (counted * grad_losses.unsqueeze(1)).reshape(-1, 1).to(occupancy.dtype)
        occupancy = occupancy.reshape(-1, occupancy.shape[-1])
        label_share, grad_gate = None, None
        if gate is not None:
            # The gate takes the blank's occupancy; the logits' blank column is only part of the softmax.
            blank_occupancy, label_share = occupancy[:, :1], occupancy[:, 1:].sum(dim=1, keepdim=True)
            grad_gate = row_weight * (torch.sigmoid(gate) * (blank_occupancy + label_share) - blank_occupancy)
            grad_gate = grad_gate.view(counted.shape).to(ctx.gate_dtype)
            occupancy = torch.cat([torch.zeros_like(blank_occupancy), occupancy[:, 1:]], dim=1)
        grad_rows = torch.empty_like(rows) if need_features else None
        grad_weight = torch.zeros(weight.shape, dtype=accumulate, device=rows.device) if need_weight else None
        grad_bias = torch.zeros(weight.shape[0], dtype=accumulate, device=rows.device) if need_bias else None
        # One buffer for a group of blocks' logit gradients; the last, shorter group uses its first rows. The
        # products for the gradients of the features and the weight run once per group.
        group_rows = _PROJECTION_ROWS * _BLOCKS_PER_PRODUCT
        buffer = scratch("ctc_logit_gradient", (min(group_rows, rows.shape[0]), weight.shape[0]), rows)
        with torch.autocast(rows.device.type, enabled=False):
            for group_start in range(0, rows.shape[0], group_rows):
                group = slice(group_start, group_start + group_rows)
                group_grad = buffer[: rows[group].shape[0]]
                for start in range(0, group_grad.shape[0], _PROJECTION_ROWS):
                    block = slice(group_start + start, group_start + start + _PROJECTION_ROWS)
                    logits = _project(rows[block], weight, bias)
                    grad_logits = group_grad[start : start + logits.shape[0]]
                    _write_logit_gradient(
                        logits,
                        log_norm[block],
                        columns[block],
                        occupancy[block],
                        row_weight[block],
                        grad_logits,
                        None if label_share is None else label_share[block],
                    )
                if grad_rows is not None:
                    torch.mm(group_grad, weight, out=grad_rows[group])
                if grad_weight is not None:
                    _accumulate(
                        grad_weight,
                        torch.mm(group_grad.t(), rows[group], out=scratch("ctc_weight", weight.shape, weight)),
                    )
                if grad_bias is not None:
                    grad_bias += group_grad.sum(dim=0, dtype=accumulate)
        return (
            None if grad_rows is None else grad_rows.view(*counted.shape, -1).to(features_dtype),
            None if grad_weight is None else grad_weight.to(weight_dtype),
            None if grad_bias is None else grad_bias.to(weight_dtype),
            grad_gate,
            None,
            None,
            None,
            None,
        )
