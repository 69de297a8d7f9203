"""Padding-mask arithmetic shared by the 1-D layers.

A mask is a bool tensor of shape ``(B, T)``, true on real tokens. ``None`` means "every position is real".

A layer zeroes the padding of what it reads across positions (the input of a convolution or a reduce) with
:func:`zero_padding`, and zeroes the padding of its output with :func:`zero_output_padding`, so that its output is
a clean padded batch. Inside :func:`padding_outputs_unzeroed` the second kind is skipped: a model whose every
cross-position read zeroes its own input, and whose consumers read only real positions, gets the same values at
its real positions (and the same gradients, since the loss gives padding none) without a pass over each block's
output, while its padding positions hold whatever the position-wise arithmetic left there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch

_ZERO_OUTPUT_PADDING: ContextVar[bool] = ContextVar("sandglass_zero_output_padding", default=True)


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padding positions of ``x``.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """
    if mask is None:
        return x
    return x * mask.unsqueeze(-1).to(x.dtype)


def zero_output_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padding positions of a layer's output, except inside :func:`padding_outputs_unzeroed`.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """
    return zero_padding(x, mask) if _ZERO_OUTPUT_PADDING.get() else x


@contextlib.contextmanager
def padding_outputs_unzeroed() -> Iterator[None]:
    """Within this context layers leave the padding positions of their outputs unzeroed (see the module
    docstring); the values at real positions do not change. Restored on exit, exception or not."""
    token = _ZERO_OUTPUT_PADDING.set(False)
    try:
        yield
    finally:
        _ZERO_OUTPUT_PADDING.reset(token)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the real positions of each sequence, ``g = Σ_t mask_t x_t / Σ_t mask_t`` (zero for an empty one).

    Shape:
        x: (B, T, C), mask: (B, T) → (B, C)
    """
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).unsqueeze(1)  # (B, 1, T): a weighted sum as one batched matmul, no masked copy
    count = weights.sum(dim=-1).clamp(min=1.0)
    return (weights @ x).squeeze(1) / count


def causal_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Running mean over the real positions up to and including each position, ``g_t = Σ_{s≤t} x_s / |{s≤t}|``.

    The causal counterpart of :func:`masked_mean`: position ``t`` never sees a later position.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """
    if mask is None:
        weights = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device).unsqueeze(-1)
    else:
        weights = mask.to(x.dtype).unsqueeze(-1)
    totals = torch.cumsum(x * weights, dim=1)
    counts = torch.cumsum(weights, dim=1).clamp(min=1.0)
    return totals / counts


def full_mask(x: torch.Tensor) -> torch.Tensor:
    """An all-true mask for a ``(B, T, C)`` batch.

    Shape:
        x: (B, T, C) → (B, T)
    """
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


def attention_mask(
    key_mask: torch.Tensor | None, query_len: int, key_len: int, causal: bool, device: torch.device
) -> torch.Tensor | None:
    """Bool mask of allowed (query, key) pairs: keys that are real and, when ``causal``, not after the query.

    Shape:
        key_mask: (B, S) → (B, 1, T, S), or None when everything is allowed
    """
    allowed = None
    if key_mask is not None:
        allowed = key_mask[:, None, None, :]
    if causal:
        future = torch.ones(query_len, key_len, dtype=torch.bool, device=device).triu(1)
        past = ~future[None, None]
        allowed = past if allowed is None else allowed & past
    return allowed
