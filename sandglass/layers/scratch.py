"""Per-thread buffers for temporaries that die inside one function, kept from one call to the next.

On the CPU the first write to each page of a fresh tensor is a page fault, and glibc hands the pages of large
freed blocks back to the system between training steps, so a fresh tensor of several MiB costs more in faults
than a pass of arithmetic over it: in ``DotProductKernelConv``'s backward at T = 64 the product that makes the
mixture's gradient (16 MiB) took 3.8 ms into a fresh tensor and 1.1 ms into one whose pages were mapped. A
scratch buffer keeps its pages. Only values that are dead when the function returns may live in one: nothing
saved for the backward, nothing returned. CUDA's caching allocator keeps its blocks itself, so on other devices
a fresh tensor is returned.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import torch

_buffers = threading.local()


def scratch(name: str, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """An uninitialized contiguous tensor of ``shape`` with ``like``'s dtype and device, held in this thread's
    buffer ``name``.

    The buffer grows to the largest request and the next request of the same name reuses it, so the caller must
    be done with what it held before; a thread of its own gets buffers of its own.
    """
    if like.device.type != "cpu":
        return like.new_empty(shape)
    held: dict[str, torch.Tensor] = _buffers.__dict__.setdefault("held", {})
    size = math.prod(shape)
    buffer = held.get(name)
    if buffer is None or buffer.numel() < size or buffer.dtype != like.dtype:
        with torch.inference_mode(False):  # a buffer made under inference mode could not be written outside it
            buffer = held[name] = torch.empty(size, dtype=like.dtype)
    return buffer[:size].view(shape)


def release_scratch() -> None:
    """Drop this thread's scratch buffers, so that their memory goes back to the system."""
    _buffers.__dict__.pop("held", None)
