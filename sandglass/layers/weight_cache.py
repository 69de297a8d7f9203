"""A tensor derived from a weight (a cast, a rearranged kernel), kept until the weight changes."""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch


class WeightCache:
    """Holds ``derive(weight)`` and recomputes it only when the weight or the ``tag`` changes.

    The key is the weight's device, dtype, shape, storage and in-place version: an optimizer step or a
    ``load_state_dict`` bumps the version, ``.to()`` gives new storage, so neither can serve a stale copy.
    The derived tensor has no gradient; use it where nothing is differentiated.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: torch.Tensor | None = None

    def get(
        self, weight: torch.Tensor, derive: Callable[[torch.Tensor], torch.Tensor], tag: Hashable = None
    ) -> torch.Tensor:
        key = (tag, weight.device, weight.dtype, tuple(weight.shape), weight.data_ptr(), weight._version)
        if self.value is None or self.key != key:
            self.key, self.value = key, derive(weight.detach())
        return self.value

    def derived(
        self, weight: torch.Tensor, derive: Callable[[torch.Tensor], torch.Tensor], tag: Hashable = None
    ) -> torch.Tensor:
        """``derive(weight)``: kept as :meth:`get` keeps it while gradients are off, computed afresh (and so
        differentiable) while they are on."""
        return derive(weight) if torch.is_grad_enabled() else self.get(weight, derive, tag)
