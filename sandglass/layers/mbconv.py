"""MBConv: the inverted-residual depthwise-separable block with a linear bottleneck (MobileNetV2, CoAtNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sandglass.layers.inverted_bottleneck import as_channels_last_image, inverted_bottleneck
from sandglass.layers.masking import zero_output_padding, zero_padding
from sandglass.layers.padding import same_padding, same_padding_2d
from sandglass.layers.shapes import check_image, check_sequence, require_positive
from sandglass.layers.squeeze_excitation import SqueezeExcitation, SqueezeExcitation2d


def se_hidden_channels(channels: int, se_ratio: float) -> int:
    """Width of the squeeze-excitation bottleneck, relative to the block's input width as in EfficientNet."""
    if not 0.0 < se_ratio <= 1.0:
        raise ValueError(f"se_ratio must be in (0, 1], got {se_ratio!r}")
    return max(1, int(channels * se_ratio))


class MBConv(nn.Module):
    """Inverted residual with a linear bottleneck on sequences.

    ``h = GELU(W_e LN(x_t))`` with ``E = expand_ratio · C`` channels, ``h ← GELU(DWConv_k(h))``,
    ``h ← SE(h)`` (optional), ``y_t = x_t + W_p h_t`` (no activation after the projection).
    The depthwise conv pads ``k - 1`` positions, the larger half in front; all of them in front when
    ``causal``, where the squeeze-excitation summary also becomes the running mean.

    Shape:
        x: (B, T, C), mask: (B, T) → (B, T, C)
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        expand_ratio: int = 4,
        squeeze_excitation: bool = True,
        se_ratio: float = 0.25,
        causal: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        require_positive("channels", channels)
        require_positive("kernel_size", kernel_size)
        require_positive("expand_ratio", expand_ratio)
        hidden = channels * expand_ratio
        self.channels = channels
        self.causal = causal
        self.padding = same_padding(kernel_size, causal)
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Linear(channels, hidden)
        self.depthwise = nn.Conv1d(hidden, hidden, kernel_size, groups=hidden)
        self.se = (
            SqueezeExcitation(hidden, hidden_channels=se_hidden_channels(channels, se_ratio), causal=causal)
            if squeeze_excitation
            else None
        )
        self.project = nn.Linear(hidden, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_sequence(x, mask, self.channels, type(self).__name__)
        front, back = self.padding
        # The fused path saves the CPU the page faults of fresh hidden-sized tensors; CUDA's caching allocator
        # has none to save, so there (and where the fused path does not apply) the reference runs.
        if x.device.type != "cpu" or self.causal or front != back or torch.is_autocast_enabled("cpu"):
            return self._composed_forward(x, mask)
        se = self.se
        hidden = inverted_bottleneck(
            self.norm(x),
            self.expand.weight,
            self.expand.bias,
            self.depthwise.weight,
            self.depthwise.bias,
            None if se is None else (se.reduce.weight, se.reduce.bias, se.expand.weight, se.expand.bias),
            self.project.weight,
            self.project.bias,
            mask,
            front,
        )
        return zero_output_padding(x + self.dropout(hidden), mask)

    def reference_forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The block composed of autograd's operations: the slow reference of the fused hidden path, and the
        path taken off the CPU, when causal, for an even kernel and under autocast.

        Shape:
            x: (B, T, C), mask: (B, T) → (B, T, C)
        """
        check_sequence(x, mask, self.channels, type(self).__name__)
        return self._composed_forward(x, mask)

    def _composed_forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        hidden = F.gelu(self.expand(self.norm(x)))
        # GELU(bias) is not zero, so the padding is zeroed here, right before the conv mixes positions.
        hidden = F.gelu(self.depthwise_conv(zero_padding(hidden, mask)))
        if self.se is not None:
            # The projection is per position and the output is masked, so the gate need not zero the padding.
            hidden = hidden * self.se.gate(hidden, mask)
        return zero_output_padding(x + self.dropout(self.project(hidden)), mask)

    def depthwise_conv(self, hidden: torch.Tensor) -> torch.Tensor:
        """The depthwise conv on channels-last input, run as a ``(k, 1)`` conv2d in ``channels_last`` memory format.

        ``(B, T, E)`` viewed as ``(B, E, T, 1)`` is already ``channels_last``, so no transposed copy is made; an
        odd non-causal kernel's padding is symmetric and left to the conv, which saves a padded copy of the
        4×-wide hidden (and its slicing in the backward pass).

        Shape:
            hidden: (B, T, E) → (B, T, E)
        """
        image = as_channels_last_image(hidden)
        front, back = self.padding
        if front == back:
            padding = (front, 0)
        else:
            image, padding = F.pad(image, (0, 0, front, back)), (0, 0)
        weight = self.depthwise.weight.unsqueeze(-1)
        y = F.conv2d(image, weight, self.depthwise.bias, padding=padding, groups=self.depthwise.groups)
        return y.permute(0, 2, 3, 1).squeeze(2)


class MBConv2d(nn.Module):
    """Inverted residual with a linear bottleneck on images.

    ``h = GELU(W_e BN(x))`` (1x1 conv to ``E = expand_ratio · C``), ``h ← GELU(DWConv_{k,stride}(h))``,
    ``h ← SE(h)`` (optional), ``y = Pool_stride(x) + W_p h`` (1x1 conv, no activation). The depthwise conv
    pads ``k - 1`` rows and columns, the larger half top and left; with ``stride > 1`` the shortcut is an
    average pool over ``stride x stride`` cells (the width does not change, so it needs no projection).

    Shape:
        x: (B, C, H, W) → (B, C, ceil(H / stride), ceil(W / stride))
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        expand_ratio: int = 4,
        squeeze_excitation: bool = True,
        se_ratio: float = 0.25,
        stride: int = 1,
    ) -> None:
        super().__init__()
        require_positive("channels", channels)
        require_positive("kernel_size", kernel_size)
        require_positive("expand_ratio", expand_ratio)
        require_positive("stride", stride)
        hidden = channels * expand_ratio
        self.channels = channels
        self.padding = same_padding_2d(kernel_size)
        self.norm = nn.BatchNorm2d(channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self.se = (
            SqueezeExcitation2d(hidden, hidden_channels=se_hidden_channels(channels, se_ratio))
            if squeeze_excitation
            else None
        )
        self.project = nn.Conv2d(hidden, channels, 1)
        self.shortcut = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.channels, type(self).__name__)
        hidden = F.gelu(self.expand(self.norm(x)))
        hidden = F.gelu(self.depthwise(F.pad(hidden, self.padding)))
        if self.se is not None:
            hidden = self.se(hidden)
        return self.shortcut(x) + self.project(hidden)
