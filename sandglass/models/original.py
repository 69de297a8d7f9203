"""The 2018 SandGlass as its author built it: a fixed sentence length, tanh and batch normalization after every
layer, mirror attention between encoder and decoder layers, a fully connected center on the flattened reduced
sequence, and per-position softmax outputs (DESIGN.md §1).

    tokens(L) ─ embed ─ [Conv → BN → tanh ─ split ─ ReduceConv → BN → tanh] × n ─ flatten ─ FC ─ tanh ─ FC ─ tanh
        ─ unflatten ─ [ExpandConv → BN → tanh ─ ReverseConv → BN → tanh ─ mirror] × n ─ per-position softmax

Sentences are padded (or cut) to ``sequence_length`` with the pad symbol, which the model learns to emit after the
last real token, so the predicted length is where the first pad appears.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.config import OriginalConfig
from sandglass.layers import Conv, ExpandConv, MaskedBatchNorm1d, MirrorAttention, ReduceConv, ReverseConv
from sandglass.layers.shapes import require_divisible, require_positive


class NormTanh(nn.Module):
    """``tanh(BN(layer(x)))``, the original's unit; ``layer`` may return ``(y, mask)``.

    Shape:
        x: (B, T, C_in) → (B, T', C_out)
    """

    def __init__(self, layer: nn.Module, channels: int) -> None:
        super().__init__()
        self.layer = layer
        self.norm = MaskedBatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        y = y[0] if isinstance(y, tuple) else y
        return torch.tanh(self.norm(y))


class OriginalSandGlass(nn.Module):
    """The fixed-length SandGlass autoencoder/translator of 2018.

    Shape:
        src: (B, S) long, S ≤ sequence_length → logits (B, L, V), L = sequence_length
    """

    def __init__(
        self, vocab_size: int, config: OriginalConfig, *, pad_id: int = 0, bos_id: int = 2, eos_id: int = 3
    ) -> None:
        super().__init__()
        require_positive("vocab_size", vocab_size)
        require_positive("sequence_length", config.sequence_length)
        require_positive("key_channels", config.key_channels)
        window = math.prod(config.reduce_factors)
        require_divisible("sequence_length", config.sequence_length, "the product of reduce_factors", window)
        self.config = config
        self.pad_id = pad_id
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.sequence_length = config.sequence_length
        self.max_length = config.sequence_length
        dim, keys, banks = config.d_model, config.key_channels, config.kernel_sizes
        require_divisible("d_model + key_channels", dim + keys, "the number of kernel_sizes", len(banks))
        self.embed = nn.Embedding(vocab_size, dim)
        self.encoder_convs = nn.ModuleList(
            NormTanh(Conv(dim, dim + keys, banks), dim + keys) for _ in config.reduce_factors
        )
        self.reduces = nn.ModuleList(NormTanh(ReduceConv(dim, dim, factor), dim) for factor in config.reduce_factors)
        reduced = config.sequence_length // window
        self.center = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(reduced * dim, config.center_hidden),
            nn.Tanh(),
            nn.Linear(config.center_hidden, reduced * dim),
            nn.Tanh(),
            nn.Unflatten(1, (reduced, dim)),
        )
        factors = list(reversed(config.reduce_factors))
        # After the first mirror the decoder carries [own values, attended encoder values]: 2·dim channels.
        expand_inputs = [dim] + [2 * dim] * (len(factors) - 1)
        self.expands = nn.ModuleList(
            NormTanh(ExpandConv(width, dim, factor), dim) for width, factor in zip(expand_inputs, factors, strict=True)
        )
        self.reverse_convs = nn.ModuleList(NormTanh(ReverseConv(dim, dim + keys, banks), dim + keys) for _ in factors)
        self.mirror = MirrorAttention(dim)
        self.output = nn.Linear(2 * dim, vocab_size)

    def fit_length(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pad with the pad id, or cut, to ``sequence_length``.

        Shape:
            tokens: (B, S) → (B, L)
        """
        length = self.sequence_length
        if tokens.shape[1] >= length:
            return tokens[:, :length]
        return F.pad(tokens, (0, length - tokens.shape[1]), value=self.pad_id)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.fit_length(src))
        mirrored = []
        for conv, reduce in zip(self.encoder_convs, self.reduces, strict=True):
            value_key = conv(x)
            mirrored.append(value_key)
            x = reduce(value_key[..., : self.config.d_model])
        x = self.center(x)
        for expand, reverse_conv, encoder_value_key in zip(
            self.expands, self.reverse_convs, reversed(mirrored), strict=True
        ):
            x = self.mirror(reverse_conv(expand(x)), encoder_value_key)
        return self.output(x)

    @torch.no_grad()
    def predict(self, src: torch.Tensor) -> list[list[int]]:
        """Per-position argmax over the non-special symbols and pad, cut at the first pad.

        Shape:
            src: (B, S) → B lists of ids
        """
        logits = self(src)
        logits[..., [self.bos_id, self.eos_id]] = float("-inf")
        outputs = []
        for row in logits.argmax(dim=-1).tolist():
            end = row.index(self.pad_id) if self.pad_id in row else len(row)
            outputs.append(row[:end])
        return outputs
