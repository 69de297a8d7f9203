"""Batch normalization of a padded sequence batch, with statistics over its real positions only."""

from __future__ import annotations

import torch
from torch import nn

from sandglass.layers.masking import zero_padding
from sandglass.layers.shapes import check_sequence, require_positive


class MaskedBatchNorm1d(nn.Module):
    """Batch normalization over the channels of a padded ``(B, T, C)`` batch, statistics from real positions.

        y = (x - μ) / sqrt(σ² + eps) · γ + β

    The original SandGlass puts one after every layer. In training ``μ`` and the biased ``σ²`` are taken per
    channel over the batch's real positions, and the running statistics move towards them like
    :class:`torch.nn.BatchNorm1d` (the running variance takes the unbiased estimate); in eval mode the running
    statistics are used. Parameters and buffers have the names of ``nn.BatchNorm1d``, so its state dict loads.
    Padding positions are zeroed in the output.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        require_positive("num_features", num_features)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum!r}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.num_features, type(self).__name__)
        x = zero_padding(x, mask)
        if self.training:
            mean, var = self._batch_statistics(x, mask)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return zero_padding(y, mask)

    def _batch_statistics(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and biased variance over the real positions; updates the running statistics."""
        real = torch.ones_like(x[..., :1]) if mask is None else mask.to(x.dtype).unsqueeze(-1)
        count = real.sum().clamp(min=1.0)
        mean = x.sum(dim=(0, 1)) / count
        var = ((x - mean) * real).square().sum(dim=(0, 1)) / count
        with torch.no_grad():
            unbiased_var = var * count / (count - 1).clamp(min=1.0)
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked.add_(1)
        return mean, var

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
