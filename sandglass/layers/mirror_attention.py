"""SandGlass mirror attention: a decoder layer attends to the key/value split of its mirrored encoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from sandglass.layers.masking import attention_mask, zero_output_padding, zero_padding
from sandglass.layers.shapes import check_sequence, require_positive


class MirrorAttention(nn.Module):
    """Key/value split attention between encoder layer *n* and its mirrored decoder layer (original v3.02).

    Both layers' outputs ``h`` (same channel count ``C > c``, ``c = value_channels``) are split by
    :meth:`split` into a value part ``V = h[..., :c]`` and a key part ``K = h[..., c:]``. The decoder
    continues with

        y = concat(V_dec, softmax(K_dec · K_encᵀ) · V_enc)

    while the encoder continues with its value part ``V_enc`` only. The scores are unscaled dot products as in
    the original, or divided by ``sqrt(C - c)`` when ``scaled``. Padded encoder positions get zero weight,
    padded decoder rows are zeroed; ``causal=True`` (equal lengths only) hides encoder positions after the
    decoder position.

    Shape:
        decoder_out: (B, T, C), encoder_out: (B, S, C), masks: (B, T), (B, S) → (B, T, 2c)
    """

    def __init__(self, value_channels: int, *, scaled: bool = False, causal: bool = False) -> None:
        super().__init__()
        require_positive("value_channels", value_channels)
        self.value_channels = value_channels
        self.scaled = scaled
        self.causal = causal

    def split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split a layer output into its value part (the first ``value_channels`` channels) and its key part.

        Shape:
            h: (B, T, C) → (B, T, c), (B, T, C - c)
        """
        return h[..., : self.value_channels], h[..., self.value_channels :]

    def forward(
        self,
        decoder_out: torch.Tensor,
        encoder_out: torch.Tensor,
        decoder_mask: torch.Tensor | None = None,
        encoder_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._check_inputs(decoder_out, encoder_out, decoder_mask, encoder_mask)
        # The decoder side is read position by position: its padding reaches only padding rows, zeroed below.
        decoder_value, decoder_key = self.split(decoder_out)
        encoder_value, encoder_key = self.split(zero_padding(encoder_out, encoder_mask))
        scores = decoder_key @ encoder_key.transpose(1, 2)
        if self.scaled:
            scores = scores / math.sqrt(decoder_key.shape[-1])
        allowed = attention_mask(
            encoder_mask, decoder_out.shape[1], encoder_out.shape[1], self.causal, decoder_out.device
        )
        if allowed is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            allowed = allowed[:, 0]  # (B, 1, T, S) → (B, T, S): no heads here
            # A finite fill keeps a row with no allowed key free of NaN; multiplying by `allowed` zeroes it.
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1) * allowed
        y = torch.cat([decoder_value, weights @ encoder_value], dim=-1)
        return zero_output_padding(y, decoder_mask)

    def _check_inputs(
        self,
        decoder_out: torch.Tensor,
        encoder_out: torch.Tensor,
        decoder_mask: torch.Tensor | None,
        encoder_mask: torch.Tensor | None,
    ) -> None:
        layer = type(self).__name__
        for name, h in (("decoder_out", decoder_out), ("encoder_out", encoder_out)):
            if h.dim() != 3:
                raise ValueError(
                    f"{layer} expects {name} of shape (B, T, C) with C > value_channels="
                    f"{self.value_channels}, got a {h.dim()}-D tensor of shape {tuple(h.shape)}"
                )
        channels = encoder_out.shape[-1]
        if channels <= self.value_channels:
            raise ValueError(
                f"{layer} needs more channels than value_channels={self.value_channels} (value part, "
                f"then key part), but encoder_out has {channels}"
            )
        check_sequence(decoder_out, decoder_mask, channels, f"{layer} (decoder_out)")
        check_sequence(encoder_out, encoder_mask, channels, f"{layer} (encoder_out)")
        if decoder_out.shape[0] != encoder_out.shape[0]:
            raise ValueError(
                f"{layer} expects decoder_out and encoder_out with the same batch size, got "
                f"{decoder_out.shape[0]} and {encoder_out.shape[0]}"
            )
        if self.causal and decoder_out.shape[1] != encoder_out.shape[1]:
            raise ValueError(
                f"{layer} with causal=True needs equal decoder and encoder lengths, got "
                f"{decoder_out.shape[1]} and {encoder_out.shape[1]}"
            )

    def extra_repr(self) -> str:
        return f"value_channels={self.value_channels}, scaled={self.scaled}, causal={self.causal}"
