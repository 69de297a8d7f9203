"""Build the model a configuration describes."""

from __future__ import annotations

from torch import nn

from sandglass.config import ModelConfig, OriginalConfig, SandGlassConfig, TransformerConfig
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer


def build_model(config: ModelConfig, vocab_size: int) -> nn.Module:
    """A freshly initialized model of ``config``'s architecture for a ``vocab_size`` vocabulary."""
    if isinstance(config, SandGlassConfig):
        return SandGlass(vocab_size, config)
    if isinstance(config, TransformerConfig):
        return Transformer(
            vocab_size,
            d_model=config.d_model,
            num_heads=config.num_heads,
            encoder_layers=config.encoder_layers,
            decoder_layers=config.decoder_layers,
            ffn_dim=config.ffn_dim,
            dropout=config.dropout,
            max_length=config.max_length,
        )
    if isinstance(config, OriginalConfig):
        return OriginalSandGlass(vocab_size, config)
    raise TypeError(f"no model for configuration {type(config).__name__}")


def max_source_tokens(config: ModelConfig) -> int:
    """The longest source, in tokens, the model accepts."""
    if isinstance(config, OriginalConfig):
        return config.sequence_length
    return config.max_length
