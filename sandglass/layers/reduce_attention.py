"""SandGlass reduce attention: each window of ``ks`` positions becomes its attention-weighted sum."""

from __future__ import annotations

import torch
from torch import nn

from sandglass.layers.reduce_conv import pad_to_windows, window_mask
from sandglass.layers.shapes import check_sequence, require_positive


class ReduceAttention(nn.Module):
    """SandGlass reduce attention: the window's "most meaningful" vector as a weighted sum of its positions.

    Inside window ``n`` (positions ``n·ks + i``, ``i < ks``), over its real positions only:

        s_i = Σ_{j≠i} x_i · x_j = x_i · (Σ_j x_j) - |x_i|²,   α = softmax(s),   Y_n = Σ_i α_i · x[n·ks + i]

    No parameters. Padding gets exactly zero weight; a window with no real position gives a zero output and is
    masked out.
    Any length ``T``: the input is padded at the end to a multiple of ``ks``, like
    :class:`~sandglass.layers.reduce_conv.ReduceConv`. Scores are unscaled dot products, as in the original.

    Shape:
        x: (B, T, C), mask: (B, T) → y: (B, ceil(T / ks), C), y_mask: (B, ceil(T / ks))
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        require_positive("kernel_size", kernel_size)
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3:
            raise ValueError(
                f"{type(self).__name__} expects a sequence batch of shape (B, T, C), "
                f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
            )
        check_sequence(x, mask, x.shape[-1], type(self).__name__)
        x, mask = pad_to_windows(x, mask, self.kernel_size)
        batch, length, channels = x.shape
        windows = x.view(batch, length // self.kernel_size, self.kernel_size, channels)
        real = mask.view(batch, -1, self.kernel_size)
        # Padding is zero, so the window sum runs over real positions only.
        totals = windows.sum(dim=2, keepdim=True)
        scores = (windows * totals).sum(dim=-1) - windows.square().sum(dim=-1)
        # A finite fill (not -inf) keeps an all-padding window free of NaN; `* real` then zeroes its weights.
        scores = scores.masked_fill(~real, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * real
        y = torch.einsum("bni,bnic->bnc", weights, windows)
        return y, window_mask(mask, self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"
