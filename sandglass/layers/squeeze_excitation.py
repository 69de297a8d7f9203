"""Squeeze-and-excitation: rescale each channel by a gate computed from a global summary of the input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.masking import causal_mean, masked_mean, zero_output_padding
from sandglass.layers.shapes import check_image, check_sequence, require_positive


class SqueezeExcitation(nn.Module):
    """Channel gating from the mean over the sequence's real positions.

    ``g = mean_t x_t`` (``causal``: the running mean ``g_t = mean_{s≤t} x_s``),
    ``y_t = x_t ⊙ sigmoid(W_2 GELU(W_1 g + b_1) + b_2)``.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """

    def __init__(self, channels: int, *, hidden_channels: int, causal: bool = False) -> None:
        super().__init__()
        require_positive("channels", channels)
        require_positive("hidden_channels", hidden_channels)
        self.channels = channels
        self.causal = causal
        self.reduce = nn.Linear(channels, hidden_channels)
        self.expand = nn.Linear(hidden_channels, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.channels, type(self).__name__)
        # (B, T, C) running summary when causal, else (B, 1, C) broadcast over the sequence.
        return zero_output_padding(x * self.gate(x, mask), mask)

    def gate(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``sigmoid(W_2 GELU(W_1 g + b_1) + b_2)``, one per sequence, or per position when ``causal``.

        Shape:
            x: (B, T, C), mask: (B, T) → (B, 1, C), or (B, T, C) when causal
        """
        summary = causal_mean(x, mask) if self.causal else masked_mean(x, mask).unsqueeze(1)
        return torch.sigmoid(self.expand(F.gelu(self.reduce(summary))))


class SqueezeExcitation2d(nn.Module):
    """Channel gating from the mean over the image.

    ``g = mean_{h,w} x_{:,h,w}``, ``y_{c,h,w} = x_{c,h,w} · sigmoid(W_2 GELU(W_1 g + b_1) + b_2)_c``.

    Shape:
        x: (B, C, H, W) → (B, C, H, W)
    """

    def __init__(self, channels: int, *, hidden_channels: int) -> None:
        super().__init__()
        require_positive("channels", channels)
        require_positive("hidden_channels", hidden_channels)
        self.channels = channels
        self.reduce = nn.Linear(channels, hidden_channels)
        self.expand = nn.Linear(hidden_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.channels, type(self).__name__)
        summary = x.mean(dim=(2, 3))
        gate = torch.sigmoid(self.expand(F.gelu(self.reduce(summary))))
        return x * gate[:, :, None, None]
