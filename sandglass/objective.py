"""The training objective of each architecture on a batch of sentence pairs.

Transformer: teacher forcing with label smoothing. SandGlass: CTC over its upsampled one-pass output.
Original SandGlass: per-position cross-entropy against the target padded to the fixed length.
"""

from __future__ import annotations

import torch
from torch import nn

from sandglass.data.batching import Batch
from sandglass.loss import LossOutput, ctc_loss_from_features, label_smoothed_cross_entropy
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer


def teacher_forcing_pair(tgt: torch.Tensor, tgt_mask: torch.Tensor, *, bos_id: int, eos_id: int, pad_id: int):
    """Decoder input ``[bos] y`` and output ``y [eos]`` of a padded target batch, with the output's mask.

    Shape:
        tgt: (B, T), tgt_mask: (B, T) → tgt_in: (B, T+1), tgt_out: (B, T+1), out_mask: (B, T+1)
    """
    batch = tgt.shape[0]
    bos = torch.full((batch, 1), bos_id, dtype=tgt.dtype, device=tgt.device)
    pad = torch.full((batch, 1), pad_id, dtype=tgt.dtype, device=tgt.device)
    tgt_in = torch.cat([bos, tgt], dim=1)
    tgt_out = torch.cat([tgt, pad], dim=1)
    lengths = tgt_mask.sum(dim=1, keepdim=True)
    tgt_out = tgt_out.scatter(1, lengths, eos_id)
    out_mask = torch.cat([torch.ones_like(tgt_mask[:, :1]), tgt_mask], dim=1)
    return tgt_in, tgt_out, out_mask


def compute_loss(model: nn.Module, batch: Batch, *, label_smoothing: float = 0.1) -> LossOutput:
    """The loss of ``model`` on ``batch``; the mean per target token, differentiable."""
    if isinstance(model, Transformer):
        tgt_in, tgt_out, out_mask = teacher_forcing_pair(
            batch.tgt, batch.tgt_mask, bos_id=model.bos_id, eos_id=model.eos_id, pad_id=model.pad_id
        )
        logits = model(batch.src, batch.src_mask, tgt_in)
        return label_smoothed_cross_entropy(logits, tgt_out, out_mask, smoothing=label_smoothing)
    if isinstance(model, SandGlass):
        # The projection onto the vocabulary runs inside the loss, so the logits are never held whole.
        features, mask = model.features(batch.src, batch.src_mask)
        weight, bias = model.vocabulary_projection()
        return ctc_loss_from_features(
            features,
            weight,
            bias,
            mask,
            batch.tgt,
            batch.tgt_mask,
            blank=model.blank_id,
            blank_logits=model.blank_logits(features),
        )
    if isinstance(model, OriginalSandGlass):
        logits = model(batch.src)
        target = model.fit_length(batch.tgt)
        mask = torch.ones_like(target, dtype=torch.bool)
        return label_smoothed_cross_entropy(logits, target, mask, smoothing=0.0)
    raise TypeError(f"no training objective for {type(model).__name__}")
