"""Argument and input-shape checks shared by the layers.

Every check raises ``ValueError`` with one sentence naming the parameter (or the input) and the rule it broke.
"""

from __future__ import annotations

import torch


def require_positive(name: str, value: int) -> None:
    """Raise unless ``value`` is an integer ≥ 1."""
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value!r}")


def require_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Raise unless ``divisor`` divides ``value``."""
    if value % divisor != 0:
        raise ValueError(f"{name} ({value}) must be divisible by {divisor_name} ({divisor})")


def check_sequence(x: torch.Tensor, mask: torch.Tensor | None, channels: int, layer: str) -> None:
    """Check a sequence batch ``x`` of shape ``(B, T, C)`` with ``C == channels`` and its ``(B, T)`` mask."""
    if x.dim() != 3:
        raise ValueError(
            f"{layer} expects a sequence batch of shape (B, T, C={channels}), got a {x.dim()}-D tensor "
            f"of shape {tuple(x.shape)}"
        )
    if x.shape[-1] != channels:
        raise ValueError(
            f"{layer} was built for {channels} input channels but the input has {x.shape[-1]} "
            f"(shape {tuple(x.shape)}); expected (B, T, {channels})"
        )
    if mask is not None and (mask.dim() != 2 or tuple(mask.shape) != tuple(x.shape[:2])):
        raise ValueError(
            f"{layer} expects a padding mask of shape (B, T) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}"
        )


def check_image(x: torch.Tensor, channels: int, layer: str) -> None:
    """Check an image batch ``x`` of shape ``(B, C, H, W)`` with ``C == channels``."""
    if x.dim() != 4:
        raise ValueError(
            f"{layer} expects an image batch of shape (B, C={channels}, H, W), got a {x.dim()}-D tensor "
            f"of shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer} was built for {channels} input channels but the input has {x.shape[1]} "
            f"(shape {tuple(x.shape)}); expected (B, {channels}, H, W)"
        )
