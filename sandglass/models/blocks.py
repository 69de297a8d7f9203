"""The blocks a SandGlass stage is made of, one letter each, all same-width ``(B, T, d) → (B, T, d)`` and mask-aware.

C  conv             x + drop(GELU(Conv(LN(x))))
R  reverse conv     x + drop(GELU(ReverseConv(LN(x))))
W  kernel-weighted  x + drop(GELU(KernelWeightedConv(LN(x))))
G  FC-generated     x + drop(GELU(FCGeneratedKernelConv(LN(x))))
D  dot-product      x + drop(GELU(DotProductKernelConv(LN(x))))
A  augmented conv   x + drop(GELU(AugmentedConv(LN(x))))
M  MBConv           (its own inverted residual)
T  transformer      pre-norm relative self-attention and feed-forward
"""

from __future__ import annotations

import torch
from torch import nn

from sandglass.layers import (
    AugmentedConv,
    Conv,
    DotProductKernelConv,
    FCGeneratedKernelConv,
    KernelWeightedConv,
    MBConv,
    ReverseConv,
    TransformerBlock,
)
from sandglass.layers.masking import zero_output_padding

BLOCK_LETTERS = "CRWGDAMT"


class ResidualConvBlock(nn.Module):
    """``x + drop(GELU(layer(LN(x))))`` around a same-width sequence layer, zero at padding.

    Shape:
        x: (B, T, d), mask: (B, T) → (B, T, d)
    """

    def __init__(self, layer: nn.Module, dim: int, *, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layer = layer
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        update = self.dropout(self.activation(self.layer(self.norm(x), mask)))
        return zero_output_padding(x + update, mask)


def parse_spec(spec: str, field: str) -> list[str]:
    """``"C-C-T"`` → ``["C", "C", "T"]``; an empty spec is no blocks. Unknown letters raise ValueError."""
    letters = [letter.strip().upper() for letter in spec.split("-") if letter.strip()]
    for letter in letters:
        if len(letter) != 1 or letter not in BLOCK_LETTERS:
            raise ValueError(
                f"{field} spec {spec!r} has an unknown block type {letter!r}; use letters of {BLOCK_LETTERS} "
                "joined by '-', e.g. 'C-C-T'"
            )
    return letters


def make_block(
    letter: str,
    dim: int,
    *,
    kernel_size: int,
    num_heads: int,
    ffn_ratio: int,
    max_distance: int,
    dropout: float,
    activation_dropout: float | None = None,
    causal: bool = False,
) -> nn.Module:
    """One block of the type ``letter`` (see the module docstring) at width ``dim``.

    ``activation_dropout`` is the dropout on a T block's feed-forward activations (``None``: ``dropout``).
    """
    if letter == "T":
        return TransformerBlock(
            dim,
            num_heads=num_heads,
            ffn_ratio=ffn_ratio,
            max_distance=max_distance,
            causal=causal,
            dropout=dropout,
            activation_dropout=activation_dropout,
        )
    if letter == "M":
        return MBConv(dim, kernel_size=kernel_size, causal=causal, dropout=dropout)
    if letter == "C":
        layer = Conv(dim, dim, (kernel_size,), causal=causal)
    elif letter == "R":
        layer = ReverseConv(dim, dim, (kernel_size,), causal=causal)
    elif letter == "W":
        layer = KernelWeightedConv(dim, dim, kernel_size, causal=causal)
    elif letter == "G":
        layer = FCGeneratedKernelConv(dim, dim, kernel_size, causal=causal)
    elif letter == "D":
        layer = DotProductKernelConv(dim, dim, kernel_size, causal=causal)
    elif letter == "A":
        width = max(num_heads, (dim // 4) // num_heads * num_heads)
        layer = AugmentedConv(
            dim, dim, kernel_size, dk=width, dv=width, num_heads=num_heads, max_length=max_distance, causal=causal
        )
    else:
        raise ValueError(f"unknown block type {letter!r}; use one of {BLOCK_LETTERS}")
    return ResidualConvBlock(layer, dim, dropout=dropout)


class BlockStack(nn.Module):
    """Blocks applied in order, each with the padding mask.

    Shape:
        x: (B, T, d), mask: (B, T) → (B, T, d)
    """

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x
