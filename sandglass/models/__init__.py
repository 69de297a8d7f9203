"""Sequence-to-sequence models: SandGlass (one pass, CTC), the original fixed-length SandGlass, and the
autoregressive Transformer reference."""

from sandglass.models.build import build_model, max_source_tokens
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass, SandGlassOutput
from sandglass.models.transformer import Transformer

__all__ = ["OriginalSandGlass", "SandGlass", "SandGlassOutput", "Transformer", "build_model", "max_source_tokens"]
