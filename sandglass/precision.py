"""Numeric precision: bf16 autocast where the hardware runs it natively, float32 elsewhere.

Training and translation share the choice ``auto | float32 | bfloat16``. Under bf16 autocast the matrix products
run in bf16 while weights, normalizations and softmaxes stay in float32.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


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
