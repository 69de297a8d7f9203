"""The reference autoregressive Transformer: a pre-norm encoder-decoder with a cached incremental decoder.

Every quality and speed figure of the SandGlass models is compared with this model (DESIGN.md §4), and it is
the teacher for sequence-level knowledge distillation. Search: :mod:`sandglass.decoding.autoregressive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.masking import zero_padding
from sandglass.layers.shapes import check_sequence, require_divisible, require_positive


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed position encodings, ``P[t] = [sin(t·ω_0), …, sin(t·ω_{h-1}), cos(t·ω_0), …, cos(t·ω_{h-1})]``.

    ``h = dim // 2`` and ``ω_i = 10000^(-i / (h-1))`` (the fairseq/tensor2tensor layout); an odd
    ``dim`` gets a zero last column.

    Shape:
        → (length, dim)
    """
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / max(half - 1, 1))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * frequencies[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table.float()


def key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """Allowed keys: the real tokens; a sequence with none allows all, so no softmax row is all -inf (NaN).

    Shape:
        mask: (B, S) → (B, 1, 1, S)
    """
    empty = ~mask.any(dim=-1, keepdim=True)
    return (mask | empty)[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention, ``softmax(q·kᵀ / √(d/H) + mask) · v`` per head, heads batched.

    Keys and values are projected separately (:meth:`keys_values`) so that a decoder can cache them.

    Shape:
        query_input: (B, T, d), keys/values: (B, H, S, d/H), allowed: (B, 1, T or 1, S) → (B, T, d)
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.output = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        return x.view(batch, length, self.num_heads, channels // self.num_heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project ``x (B, S, d)`` to per-head keys and values ``(B, H, S, d/H)``."""
        return self.split_heads(self.key(x)), self.split_heads(self.value(x))

    def forward(
        self,
        query_input: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        allowed: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        queries = self.split_heads(self.query(query_input))
        attended = F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed, is_causal=is_causal)
        return self.output(attended.transpose(1, 2).flatten(2))


def feed_forward(d_model: int, ffn_dim: int, dropout: float) -> nn.Sequential:
    """Position-wise ``W_2 · relu(W_1 x + b_1) + b_2``."""
    return nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model))


class EncoderLayer(nn.Module):
    """Pre-norm encoder layer: ``x += SelfAttn(LN(x))``, then ``x += FFN(LN(x))``.

    Shape:
        x: (B, S, d), allowed: (B, 1, 1, S) → (B, S, d)
    """

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attention_norm = nn.LayerNorm(d_model)
        self.self_attention = MultiHeadAttention(d_model, num_heads)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = feed_forward(d_model, ffn_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        normed = self.self_attention_norm(x)
        keys, values = self.self_attention.keys_values(normed)
        x = x + self.dropout(self.self_attention(normed, keys, values, allowed))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


@dataclass
class LayerCache:
    """One decoder layer's cached keys and values, each ``(B, H, ·, d/H)``: self-attention over the decoded
    prefix (grows by one position per step) and cross-attention over the memory (computed once)."""

    self_keys: torch.Tensor | None = None
    self_values: torch.Tensor | None = None
    cross_keys: torch.Tensor | None = None
    cross_values: torch.Tensor | None = None


@dataclass
class DecoderCache:
    """The incremental decoder's state: a :class:`LayerCache` per layer and the number of steps so far."""

    layers: list[LayerCache] = field(default_factory=list)
    length: int = 0

    def reorder(self, indices: torch.Tensor) -> None:
        """Keep (and reorder, or repeat) the batch rows ``indices``, in place; used by beam search."""
        for layer in self.layers:
            for slot in fields(layer):
                cached = getattr(layer, slot.name)
                if cached is not None:
                    setattr(layer, slot.name, cached.index_select(0, indices))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: causal self-attention, attention to the memory, then a feed-forward block.

    ``x += CausalSelfAttn(LN(x))``; ``x += CrossAttn(LN(x), memory)``; ``x += FFN(LN(x))``.

    Shape:
        x: (B, T, d), memory keys/values: (B, H, S, d/H), src_allowed: (B, 1, 1, S) → (B, T, d)
    """

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attention_norm = nn.LayerNorm(d_model)
        self.self_attention = MultiHeadAttention(d_model, num_heads)
        self.cross_attention_norm = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, num_heads)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = feed_forward(d_model, ffn_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory_keys: torch.Tensor,
        memory_values: torch.Tensor,
        src_allowed: torch.Tensor,
    ) -> torch.Tensor:
        normed = self.self_attention_norm(x)
        keys, values = self.self_attention.keys_values(normed)
        x = x + self.dropout(self.self_attention(normed, keys, values, is_causal=True))
        return self._attend_memory_and_transform(x, memory_keys, memory_values, src_allowed)

    def step(self, x: torch.Tensor, cache: LayerCache, src_allowed: torch.Tensor) -> torch.Tensor:
        """One step for ``x (B, 1, d)``: append its keys/values to ``cache``, attend to the whole prefix."""
        normed = self.self_attention_norm(x)
        keys, values = self.self_attention.keys_values(normed)
        if cache.self_keys is not None:
            keys = torch.cat([cache.self_keys, keys], dim=2)
            values = torch.cat([cache.self_values, values], dim=2)
        cache.self_keys, cache.self_values = keys, values
        x = x + self.dropout(self.self_attention(normed, keys, values))
        return self._attend_memory_and_transform(x, cache.cross_keys, cache.cross_values, src_allowed)

    def _attend_memory_and_transform(
        self,
        x: torch.Tensor,
        memory_keys: torch.Tensor,
        memory_values: torch.Tensor,
        src_allowed: torch.Tensor,
    ) -> torch.Tensor:
        normed = self.cross_attention_norm(x)
        x = x + self.dropout(self.cross_attention(normed, memory_keys, memory_values, src_allowed))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Transformer(nn.Module):
    """Autoregressive pre-norm Transformer encoder-decoder (Vaswani et al., 2017), the reference model.

    ``e(w, t) = √d · E[w] + P[t]`` with one embedding ``E`` for source and target and sinusoidal ``P``;
    ``memory = LN(Enc(e(src)))``; ``logits = LN(Dec(e(tgt_in), memory)) · Eᵀ`` (tied) with causal decoder
    self-attention. Positions count from 0 in every sequence (padding is on the right), so a sentence gets the
    same result alone and in a padded batch.

    Shape:
        src: (B, S) long, src_mask: (B, S) bool, tgt_in: (B, T) long → logits (B, T, V)
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        d_model: int = 256,
        num_heads: int = 4,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        max_length: int = 512,
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
        tie_embeddings: bool = True,
    ) -> None:
        super().__init__()
        for name, value in [
            ("vocab_size", vocab_size),
            ("d_model", d_model),
            ("num_heads", num_heads),
            ("encoder_layers", encoder_layers),
            ("decoder_layers", decoder_layers),
            ("ffn_dim", ffn_dim),
            ("max_length", max_length),
        ]:
            require_positive(name, value)
        require_divisible("d_model", d_model, "num_heads", num_heads)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        for name, value in [("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)]:
            if not 0 <= value < vocab_size:
                raise ValueError(f"{name} must be a token id in [0, vocab_size={vocab_size}), got {value!r}")
        self.vocab_size, self.d_model, self.max_length = vocab_size, d_model, max_length
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.register_buffer("positions", sinusoidal_positions(max_length, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(encoder_layers))
        self.encoder_norm = nn.LayerNorm(d_model)
        self.decoder = nn.ModuleList(DecoderLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(decoder_layers))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.output_projection = None if tie_embeddings else nn.Linear(d_model, vocab_size, bias=False)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # With the √d scale, embeddings enter with unit variance, and tied logits start near zero.
        nn.init.normal_(self.embedding.weight, mean=0.0, std=self.d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[self.pad_id].zero_()

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits for every target position."""
        return self.decode(tgt_in, self.encode(src, src_mask), src_mask)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's memory, zero at padding.

        Shape:
            src: (B, S), src_mask: (B, S) → (B, S, d)
        """
        self._check_tokens("src", src, src_mask)
        x = self._embed(src, offset=0)
        allowed = key_padding_mask(src_mask)
        for layer in self.encoder:
            x = layer(x, allowed)
        return zero_padding(self.encoder_norm(x), src_mask)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoder logits over a whole target prefix (no cache).

        Shape:
            tgt_in: (B, T), memory: (B, S, d), src_mask: (B, S) → (B, T, V)
        """
        self._check_tokens("tgt_in", tgt_in, None)
        self._check_memory(memory, src_mask, batch=tgt_in.shape[0])
        x = self._embed(tgt_in, offset=0)
        allowed = key_padding_mask(src_mask)
        for layer in self.decoder:
            memory_keys, memory_values = layer.cross_attention.keys_values(memory)
            x = layer(x, memory_keys, memory_values, allowed)
        return self._project(self.decoder_norm(x))

    def new_cache(self) -> DecoderCache:
        """An empty cache for :meth:`decode_step`."""
        return DecoderCache(layers=[LayerCache() for _ in self.decoder])

    def decode_step(
        self, tokens: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, cache: DecoderCache
    ) -> torch.Tensor:
        """Logits for the next token after feeding ``tokens`` at position ``cache.length``; updates ``cache``.

        The memory's cross-attention keys/values are computed on the first step and then read from the cache,
        so ``memory`` is only used while the cache holds none. After ``cache.reorder(indices)`` pass
        ``memory`` and ``src_mask`` with the same rows.

        Shape:
            tokens: (B,), memory: (B, S, d), src_mask: (B, S) → (B, V)
        """
        if tokens.dim() != 1:
            raise ValueError(f"Transformer.decode_step expects tokens of shape (B,), got {tuple(tokens.shape)}")
        self._check_memory(memory, src_mask, batch=tokens.shape[0])
        if len(cache.layers) != len(self.decoder):
            raise ValueError(f"cache has {len(cache.layers)} layers, the decoder {len(self.decoder)}")
        x = self._embed(tokens[:, None], offset=cache.length)
        allowed = key_padding_mask(src_mask)
        for layer, layer_cache in zip(self.decoder, cache.layers, strict=True):
            if layer_cache.cross_keys is None:
                layer_cache.cross_keys, layer_cache.cross_values = layer.cross_attention.keys_values(memory)
            x = layer.step(x, layer_cache, allowed)
        cache.length += 1
        return self._project(self.decoder_norm(x))[:, 0]

    def _embed(self, tokens: torch.Tensor, offset: int) -> torch.Tensor:
        end = offset + tokens.shape[1]
        if end > self.max_length:
            raise ValueError(f"sequence positions up to {end} exceed max_length ({self.max_length})")
        scaled = self.embedding(tokens) * math.sqrt(self.d_model)
        return self.dropout(scaled + self.positions[offset:end].to(scaled.dtype))

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_projection is None:
            return F.linear(x, self.embedding.weight)
        return self.output_projection(x)

    def _check_tokens(self, name: str, tokens: torch.Tensor, mask: torch.Tensor | None) -> None:
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(
                f"{name} must be integer token ids of shape (B, L), got {tokens.dtype} {tuple(tokens.shape)}"
            )
        if mask is not None and (mask.dtype != torch.bool or mask.shape != tokens.shape):
            raise ValueError(
                f"{name}_mask must be a bool mask of shape (B, L) = {tuple(tokens.shape)}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )

    def _check_memory(self, memory: torch.Tensor, src_mask: torch.Tensor, batch: int) -> None:
        check_sequence(memory, src_mask, self.d_model, "Transformer decoder (memory)")
        if memory.shape[0] != batch:
            raise ValueError(f"memory has batch size {memory.shape[0]} but the target batch has {batch}")
