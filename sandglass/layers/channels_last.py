"""Convolutions of channels-last sequences as one matrix product each: no ``(B, C, T)`` transposes.

``nn.Conv1d`` wants ``(B, C, T)``; the layers hold ``(B, T, C)``. Unfolding the windows and multiplying by the
flattened kernel computes the same sums and skips the two transposed copies. At batch 1 it also avoids PyTorch's
unblocked small-input convolution kernels; the stride = kernel size layers are a plain reshape and one product,
which halves their backward pass. The layers keep their ``nn.Conv1d`` / ``nn.ConvTranspose1d`` modules as the
holders of the weights (so ``state_dict`` keys are unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, front: int, back: int
) -> torch.Tensor:
    """Stride-1 cross-correlation with ``front`` and ``back`` zeros around the sequence.

        y[t] = Σ_{k<ks} W[:, :, k] · x[t - front + k] + b,   x zero outside 0..T-1

    Shape:
        x: (B, T, C_in), weight: (C_out, C_in, ks) → (B, T + front + back - ks + 1, C_out)
    """
    kernel_size = weight.shape[-1]
    windows = F.pad(x, (0, 0, front, back)).unfold(1, kernel_size, 1)  # (B, T', C_in, ks)
    return F.linear(windows.flatten(2), weight.flatten(1), bias)


def window_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Convolution with stride = kernel size over a length that is a multiple of it.

        y[n] = Σ_{k<ks} W[:, :, k] · x[n·ks + k] + b

    Shape:
        x: (B, N·ks, C_in), weight: (C_out, C_in, ks) → (B, N, C_out)
    """
    batch, length, channels = x.shape
    kernel_size = weight.shape[-1]
    windows = x.reshape(batch, length // kernel_size, kernel_size * channels)  # index k·C_in + c
    return F.linear(windows, weight.transpose(1, 2).flatten(1), bias)


def window_transposed_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Transposed convolution with stride = kernel size: each position writes its own ``ks`` outputs.

        y[i·ks + k] = x[i] · W[:, :, k] + b

    Shape:
        x: (B, T, C_in), weight: (C_in, C_out, ks) → (B, T·ks, C_out)
    """
    batch, length, in_channels = x.shape
    _, out_channels, kernel_size = weight.shape
    taps = x @ weight.reshape(in_channels, out_channels * kernel_size)  # (B, T, C_out·ks), the weight's own layout
    y = taps.view(batch, length, out_channels, kernel_size).transpose(2, 3).reshape(batch, -1, out_channels)
    return y if bias is None else y + bias
