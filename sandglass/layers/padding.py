"""The zero padding that makes a stride-1 convolution keep the length (size) of its input."""

from __future__ import annotations


def same_padding(kernel_size: int, causal: bool = False) -> tuple[int, int]:
    """``(front, back)`` zero padding that keeps the length: the larger half of ``ks - 1`` in front.

        front = ceil((ks - 1) / 2) = ks // 2,   back = ks - 1 - front;   causal: front = ks - 1, back = 0

    so with ``causal=True`` output position ``i`` sees only inputs ``≤ i``.
    """
    total = kernel_size - 1
    front = total if causal else total - total // 2
    return front, total - front


def same_padding_2d(kernel_size: int) -> tuple[int, int, int, int]:
    """``F.pad`` order ``(left, right, top, bottom)`` of :func:`same_padding` on both axes: larger half top and left."""
    front, back = same_padding(kernel_size)
    return front, back, front, back
