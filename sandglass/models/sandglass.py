"""SandGlass: a one-pass convolutional translator (DESIGN.md §4).

    tokens ─ embed ─ [stage blocks] ─ reduce ─ … ─ [center] ─ expand ─ mirror ─ [blocks] ─ … ─ ×u ─ [blocks] ─ CTC

Each encoder stage ends by splitting its output into a value part, which goes on to the reduce layer, and a key
part kept for the mirrored decoder stage, whose ``MirrorAttention`` reads the encoder's values by matching keys.
The output is ``u`` times longer than the source and trained with CTC, so no decoder input is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.config import SandGlassConfig
from sandglass.layers import ExpandConv, MirrorAttention, ReduceAttention, ReduceConv
from sandglass.layers.masking import padding_outputs_unzeroed, zero_output_padding
from sandglass.layers.shapes import require_positive
from sandglass.layers.weight_cache import WeightCache
from sandglass.models.blocks import BlockStack, make_block, parse_spec
from sandglass.models.row_max import column_max, row_max
from sandglass.models.transformer import sinusoidal_positions

NOT_A_LABEL = -1e9  # the logit of the ids that are never outputs (bos, eos; the blank when it has a gate)


def blank_gated_log_probs(logits: torch.Tensor, blank_logits: torch.Tensor, blank_id: int) -> torch.Tensor:
    """Log-probabilities of a gated blank: ``log σ(s)`` for the blank, ``log σ(−s) + log_softmax(logits)_v`` else.

    Shape:
        logits: (B, T, V), blank_logits: (B, T) → (B, T, V)
    """
    log_probs = F.log_softmax(logits, dim=-1) + F.logsigmoid(-blank_logits).unsqueeze(-1)
    return log_probs.index_copy(
        -1, torch.tensor([blank_id], device=logits.device), F.logsigmoid(blank_logits)[..., None]
    )


@dataclass
class SandGlassOutput:
    """Per-frame logits of the upsampled output and its mask; ``log_probs`` normalizes them.

    ``logits`` is a transposed view of a time-major tensor: CTC reads (u·S, B, V), and a contiguous layout there
    keeps the loss free of strided copies over the largest tensor of the model. ``blank_logits`` are the logits
    of the blank's gate when the model has one (``SandGlassConfig.blank_gate``).

    Shape:
        logits: (B, u·S, V), mask: (B, u·S), blank_logits: (B, u·S) or None, log_probs: (B, u·S, V)
    """

    logits: torch.Tensor
    mask: torch.Tensor
    blank_logits: torch.Tensor | None = None
    blank_id: int = 0

    @property
    def log_probs(self) -> torch.Tensor:
        """The frames' log-probabilities, computed on each access; half precision is normalized in float32."""
        half = self.logits.dtype in (torch.float16, torch.bfloat16)
        dtype = torch.float32 if half else self.logits.dtype
        if self.blank_logits is not None:
            return blank_gated_log_probs(self.logits.to(dtype), self.blank_logits.to(dtype), self.blank_id)
        return F.log_softmax(self.logits, dim=-1, dtype=dtype)


@dataclass
class SandGlassLabels:
    """The likeliest label of each output frame and the frames' mask.

    Shape:
        labels: (B, u·S) long, mask: (B, u·S)
    """

    labels: torch.Tensor
    mask: torch.Tensor


class EncoderStage(nn.Module):
    """Blocks, then a split into value (continues) and key (kept for the mirror), then a reduce by ``factor``."""

    def __init__(self, blocks: BlockStack, dim: int, key_dim: int, reduce: str, factor: int) -> None:
        super().__init__()
        self.blocks = blocks
        self.to_value_key = nn.Linear(dim, dim + key_dim)
        self.reduce = ReduceAttention(factor) if reduce == "attention" else ReduceConv(dim, dim, factor)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns the reduced values, their mask (None when ``mask`` is: every window then holds a real
        position), and the full value+key output for the mirror."""
        value_key = zero_output_padding(self.to_value_key(self.blocks(x, mask)), mask)
        value = value_key[..., : x.shape[-1]]
        reduced, reduced_mask = self.reduce(value, mask)
        return reduced, None if mask is None else reduced_mask, value_key


class DecoderStage(nn.Module):
    """Expand by ``factor``, attend to the mirrored encoder stage, merge back to ``dim``, then blocks."""

    def __init__(self, blocks: BlockStack, dim: int, key_dim: int, factor: int) -> None:
        super().__init__()
        self.expand = ExpandConv(dim, dim, factor)
        self.to_value_key = nn.Linear(dim, dim + key_dim)
        self.mirror = MirrorAttention(dim, scaled=True)
        self.merge = nn.Linear(2 * dim, dim)
        self.blocks = blocks

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        encoder_value_key: torch.Tensor,
        encoder_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        expanded, _ = self.expand(x, mask)
        length = encoder_value_key.shape[1]
        # The crop is a strided view; a linear layer over a strided (B, T, C) view runs as a batched product
        # with the weight copied for every sentence (under bf16 autocast 6× the time of the contiguous input).
        expanded = expanded[:, :length].contiguous()
        value_key = self.to_value_key(expanded)
        attended = self.mirror(value_key, encoder_value_key, encoder_mask, encoder_mask)
        merged = zero_output_padding(self.merge(attended), encoder_mask)
        return self.blocks(merged, encoder_mask)


class SandGlass(nn.Module):
    """The non-autoregressive SandGlass translator; ``forward`` gives the whole output in one pass.

    Shape:
        src: (B, S) long, src_mask: (B, S) bool → SandGlassOutput(logits (B, u·S, V), mask (B, u·S))
    """

    def __init__(
        self,
        vocab_size: int,
        config: SandGlassConfig,
        *,
        pad_id: int = 0,
        blank_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
    ) -> None:
        super().__init__()
        require_positive("vocab_size", vocab_size)
        for name in ("d_model", "reduce_factor", "upsample", "kernel_size", "num_heads", "max_length"):
            require_positive(name, getattr(config, name))
        if config.reduce not in ("conv", "attention"):
            raise ValueError(f"reduce must be 'conv' or 'attention', got {config.reduce!r}")
        self.config = config
        self.pad_id = pad_id
        self.blank_id = blank_id
        self.bos_id = bos_id
        self.eos_id = eos_id
        # bos and eos never occur in CTC targets, so they are not outputs of this model: the vocabulary projection's
        # bias puts them at -1e9. A bias rather than a fill of the two columns of the logits: the training loss
        # runs the projection itself (sandglass.loss.ctc_loss_from_features), and a fill's backward would copy
        # the gradient of the whole logits, the largest tensor of a training step.
        # With a gate of its own the blank is not one of the softmax's labels either.
        not_labels = [bos_id, eos_id, blank_id] if config.blank_gate else [bos_id, eos_id]
        not_label_ids = torch.tensor(not_labels)
        self.register_buffer("not_label_ids", not_label_ids, persistent=False)
        label_bias = torch.zeros(vocab_size).index_fill_(0, not_label_ids, NOT_A_LABEL)
        self.register_buffer("label_bias", label_bias, persistent=False)
        self.max_length = config.max_length
        self.vocabulary_cast = WeightCache()
        dim = config.d_model

        def stack(letters: list[str], count: int = 1) -> BlockStack:
            return BlockStack(
                [
                    make_block(
                        letter,
                        dim,
                        kernel_size=config.kernel_size,
                        num_heads=config.num_heads,
                        ffn_ratio=config.ffn_ratio,
                        max_distance=config.max_distance,
                        dropout=config.dropout,
                        activation_dropout=config.activation_dropout,
                    )
                    for letter in letters
                    for _ in range(count)
                ]
            )

        stage_letters = parse_spec(config.encoder, "encoder")
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.register_buffer("positions", sinusoidal_positions(config.max_length, dim), persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(
            EncoderStage(
                stack([letter], config.blocks_per_stage),
                dim,
                config.mirror_key_dim,
                config.reduce,
                config.reduce_factor,
            )
            for letter in stage_letters
        )
        self.center = stack(parse_spec(config.center, "center"))
        # The decoder mirrors the encoder; a conv stage is mirrored by reverse convolutions.
        self.decoder = nn.ModuleList(
            DecoderStage(
                stack(["R" if letter == "C" else letter], config.blocks_per_stage),
                dim,
                config.mirror_key_dim,
                config.reduce_factor,
            )
            for letter in reversed(stage_letters)
        )
        self.upsample = ExpandConv(dim, dim, config.upsample)
        self.output = stack(parse_spec(config.output, "output"))
        self.final_norm = nn.LayerNorm(dim)
        self.blank_gate = nn.Linear(dim, 1) if config.blank_gate else None
        # With the √d scale, embeddings enter with unit variance, and the tied logits start near zero
        # (nn.Embedding's N(0, 1) would give logits of standard deviation √d and a near one-hot start).
        nn.init.normal_(self.embed.weight, mean=0.0, std=dim**-0.5)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> SandGlassOutput:
        features, mask = self.features(src, src_mask)
        logits = F.linear(features.transpose(0, 1), *self.vocabulary_projection())
        return SandGlassOutput(logits.transpose(0, 1), mask, self.blank_logits(features), self.blank_id)

    def blank_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """The logits ``s = g·h + c`` of the blank's gate, ``p(blank) = σ(s)``; None without a gate.

        Shape:
            features: (B, T, d) → (B, T) or None
        """
        return None if self.blank_gate is None else self.blank_gate(features).squeeze(-1)

    def best_labels(self, src: torch.Tensor, src_mask: torch.Tensor, *, chunk_rows: int = 256) -> SandGlassLabels:
        """The likeliest label of every real output frame, as ``forward(...).log_probs.argmax(-1)`` gives it;
        padding frames get the blank.

        The softmax does not change the argmax, so it is skipped, and the vocabulary projection runs over
        ``chunk_rows`` frames at a time so that each block of logits is reduced while it is still in cache
        instead of being written out whole (the largest tensor of the model, ``B·u·S·V``). Only real frames
        are projected: nothing reads a padding frame's label, and the projection is the largest product of a
        batch (about a third of a batch-64 translation on CPU).

        Shape:
            src: (B, S) long, src_mask: (B, S) bool → SandGlassLabels(labels (B, u·S) long, mask (B, u·S))
        """
        require_positive("chunk_rows", chunk_rows)
        features, mask = self.features(src, src_mask)
        rows = features.reshape(-1, features.shape[-1])
        real = None if bool(mask.all()) else mask.reshape(-1).nonzero().squeeze(1)
        if real is not None:
            rows = rows.index_select(0, real)
        if self.blank_gate is not None:
            labels = self.gated_best_labels(rows, chunk_rows)
        else:
            labels = self.frame_labels(rows, chunk_rows)
        if real is not None:
            labels = labels.new_full((mask.numel(),), self.blank_id).index_copy_(0, real, labels)
        return SandGlassLabels(labels.view(mask.shape), mask)

    @torch.no_grad()  # labels have no gradient, and a product into a buffer has no backward
    def frame_labels(self, rows: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        """The argmax over the vocabulary of each row's logits ``rows · Wᵀ + b``, ``chunk_rows`` rows at a time.

        Equal to ``row_max(F.linear(chunk, *self.vocabulary_projection()))`` per chunk, as the slower reference
        :meth:`reference_frame_labels` computes it, with four costs of that form avoided: autocast would cast
        the ``V × d`` weight again for every chunk, ``addmm`` copies the bias into every block before the
        product (the bias is zero but at the non-labels, which are filled instead), each fresh block of logits
        costs page faults, and the block would be widened to float32 for its maximum. Here the weight is cast
        once (and kept while it is unchanged, see :meth:`cast_vocabulary_weight`), one block of logits is
        reused, and the logits are made transposed, ``W · chunkᵀ`` of shape ``(V, rows)``: on CPU the bf16
        product is faster in that orientation (256 rows × 8,000 labels: 0.40 against 0.60 ms), and the maximum
        down its columns needs no widening (:func:`column_max`, which reads bf16 scores' bits as ``int16``).

        Shape:
            rows: (R, d) → (R,) long
        """
        device_type = rows.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        weight = self.cast_vocabulary_weight(dtype)
        rows = rows.to(weight.dtype)
        vocab_size = weight.shape[0]
        buffer = rows.new_empty(vocab_size * min(chunk_rows, rows.shape[0]))
        labels = torch.empty(rows.shape[0], dtype=torch.long, device=rows.device)
        for start in range(0, rows.shape[0], chunk_rows):
            chunk = rows[start : start + chunk_rows]
            logits_t = buffer[: vocab_size * chunk.shape[0]].view(vocab_size, chunk.shape[0])
            torch.mm(weight, chunk.t(), out=logits_t)
            logits_t[self.not_label_ids] = NOT_A_LABEL
            labels[start : start + chunk.shape[0]] = column_max(logits_t).indices
        return labels

    def cast_vocabulary_weight(self, dtype: torch.dtype | None) -> torch.Tensor:
        """The vocabulary weight in ``dtype`` (None: its own), the cast kept until the weight changes.

        Autocast keeps its casts of parameters for one context only; a translation at batch 1 calls this once
        per sentence, and a fresh cast of the ``V × d`` weight cost more than that sentence's projection.
        The copy is keyed on the weight's storage and in-place version, so a training step or a load replaces it.

        Shape:
            → (V, d)
        """
        weight = self.embed.weight
        if dtype is None or dtype == weight.dtype:
            return weight
        return self.vocabulary_cast.get(weight, lambda source: source.to(dtype), tag=dtype)

    def reference_frame_labels(self, rows: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        """:meth:`frame_labels` in its direct form, kept as the reference its test compares with.

        Shape:
            rows: (R, d) → (R,) long
        """
        projection = self.vocabulary_projection()
        return torch.cat([row_max(F.linear(chunk, *projection)).indices for chunk in rows.split(chunk_rows)])

    def gated_best_labels(self, rows: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        """The likeliest label of each frame of a gated blank, projecting only frames where a label can win.

        Where ``σ(s) ≥ ½`` no label's ``(1 − σ(s)) · softmax_v`` reaches the blank's probability, so those frames
        are the blank without their logits; elsewhere a label wins only above the blank (a tie goes to the blank).

        Shape:
            rows: (R, d) → (R,) long
        """
        gate = self.blank_gate(rows).squeeze(-1).float()
        labels = torch.full(gate.shape, self.blank_id, dtype=torch.long, device=rows.device)
        open_rows = (gate < 0).nonzero().squeeze(1)
        for index in open_rows.split(chunk_rows):
            logits = F.linear(rows[index], *self.vocabulary_projection()).float()
            best = row_max(logits)
            # log_softmax of the best label, -log Σ exp(logits - best), with the exponentials taken in place.
            label_log_prob = F.logsigmoid(-gate[index]) - logits.sub_(best.values[:, None]).exp_().sum(-1).log()
            labels[index] = torch.where(label_log_prob > F.logsigmoid(gate[index]), best.indices, self.blank_id)
        return labels

    def vocabulary_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight (tied to the embedding) and bias of the projection ``logits = features · Wᵀ + b``.

        Shape:
            → weight (V, d), bias (V,)
        """
        return self.embed.weight, self.label_bias

    def features(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalized output features before the vocabulary projection, and their mask.

        The features of padding frames are unspecified. Every layer zeroes the padding of what it reads across
        positions, and nothing reads a padding frame (the loss and the decoders go by the mask), so the passes
        that would zero each layer's output are skipped (:func:`padding_outputs_unzeroed`): on CPU they took 7% to
        11% of a batch-64 translation and 7% to 8% of a training step. :meth:`reference_features` is the
        same network with them, kept as the reference its tests compare with.

        Shape:
            src: (B, S) long, src_mask: (B, S) bool → features (B, u·S, d), mask (B, u·S)
        """
        with padding_outputs_unzeroed():
            return self.reference_features(src, src_mask)

    def reference_features(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features` with every layer's output zeroed at padding (outside :func:`padding_outputs_unzeroed`).

        Shape:
            src: (B, S) long, src_mask: (B, S) bool → features (B, u·S, d), mask (B, u·S)
        """
        if src.dim() != 2 or src_mask.shape != src.shape:
            raise ValueError(
                f"expected src and src_mask of shape (B, S), got {tuple(src.shape)}, {tuple(src_mask.shape)}"
            )
        if src.shape[1] > self.max_length:
            raise ValueError(f"source length {src.shape[1]} exceeds the model's max_length {self.max_length}")
        x = self.embed(src) * math.sqrt(self.config.d_model) + self.positions[: src.shape[1]]
        x = zero_output_padding(self.dropout(x), src_mask)
        # With nothing padded (always so at batch 1) an all-true mask changes no value, so outside training
        # the layers get None and skip their masking arithmetic: about 190 of a batch-1 pass's 440 operations.
        # Training keeps the mask, so a step on a GPU never waits for this check.
        mask = None if not self.training and bool(src_mask.all()) else src_mask
        mirrors = []
        for stage in self.encoder:
            reduced, reduced_mask, value_key = stage(x, mask)
            mirrors.append((value_key, mask))
            x, mask = reduced, reduced_mask
        x = self.center(x, mask)
        for stage, (value_key, stage_mask) in zip(self.decoder, reversed(mirrors), strict=True):
            x = stage(x, mask, value_key, stage_mask)
            mask = stage_mask
        x, output_mask = self.upsample(x, mask)
        return self.final_norm(self.output(x, None if mask is None else output_mask)), output_mask
