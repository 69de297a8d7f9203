"""Output token ids for a batch of sources, whatever the architecture: search for the Transformer, one pass
with CTC collapsing for SandGlass, per-position argmax for the original SandGlass."""

from __future__ import annotations

import torch
from torch import nn

from sandglass.decoding import beam_search, ctc_collapse, ctc_prefix_beam_search, greedy_search
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer


@torch.no_grad()
def generate(
    model: nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    *,
    beam_size: int = 1,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """The best output ids for each source sentence (no bos, eos or padding).

    ``beam_size > 1`` runs beam search (Transformer) or CTC prefix beam search (SandGlass).

    Shape:
        src: (B, S), src_mask: (B, S) → B lists of ids
    """
    if isinstance(model, Transformer):
        if beam_size > 1:
            result = beam_search(model, src, src_mask, beam_size=beam_size, length_penalty=length_penalty)
        else:
            result = greedy_search(model, src, src_mask)
        return result.best
    if isinstance(model, SandGlass):
        if beam_size > 1:
            output = model(src, src_mask)
            beams = ctc_prefix_beam_search(output.log_probs, output.mask, blank=model.blank_id, beam_size=beam_size)
            return [hypotheses[0].tokens for hypotheses in beams]
        frames = model.best_labels(src, src_mask)
        return ctc_collapse(frames.labels, frames.mask, blank=model.blank_id)
    if isinstance(model, OriginalSandGlass):
        return model.predict(src)
    raise TypeError(f"no decoding for {type(model).__name__}")
