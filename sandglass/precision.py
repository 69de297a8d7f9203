"""Numeric precision: bf16 autocast where the hardware runs it natively, float32 elsewhere.

Training and translation share the choice ``auto | float32 | bfloat16``. Under bf16 autocast the matrix products
run in bf16 while weights, normalizations and softmaxes stay in float32.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from pathlib import Path

import torch
from torch import nn

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")

# The layers whose weights enter only matrix products and convolutions, which autocast runs in bf16.
PRODUCT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)


@functools.cache
def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX or AVX512-BF16; read from Linux's cpuinfo)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set(cpuinfo.split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def uses_bfloat16(device: torch.device, precision: str) -> bool:
    """Whether ``precision`` (``auto``, ``float32`` or ``bfloat16``) means bf16 autocast on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bfloat16_units())
    return precision == "bfloat16"


def autocast_for(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast when :func:`uses_bfloat16` says so; full precision otherwise."""
    enabled = uses_bfloat16(device, precision)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def with_product_weights_in(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` for inference under ``dtype`` autocast, the weights of its product layers cast once.

    Autocast keeps a cast weight for the rest of its context only where it reaches the weight itself outside
    inference mode; a weight it reaches through a view (a flattened kernel, a transposed matrix) or a derived
    tensor is cast again at every call. At batch 1 those casts took a fifth of a SandGlass pass on CPU. Autocast
    rounds a float32 weight to ``dtype`` before each product, so a weight rounded once gives the same
    products; biases, normalizations and embeddings keep their precision, and ``model`` is not changed.
    """
    cast = copy.deepcopy(model)
    for module in cast.modules():
        if isinstance(module, PRODUCT_LAYERS):
            module.weight = nn.Parameter(module.weight.detach().to(dtype), requires_grad=False)
    return cast
