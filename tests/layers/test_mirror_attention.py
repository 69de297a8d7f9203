"""MirrorAttention: decoder keys attend to the mirrored encoder layer's keys, reading its values."""

import math

import pytest
import torch

from sandglass.layers.mirror_attention import MirrorAttention
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch

VALUE_CHANNELS = 2


def mirror_attention_loop(decoder, encoder, decoder_mask, encoder_mask, *, scaled, causal):
    """y_t = concat(V_dec[t], Σ_s α_ts V_enc[s]), α_t = softmax_s(K_dec[t] · K_enc[s]).

    The softmax runs over real keys (and s ≤ t when causal); padded decoder rows stay zero.
    """
    c = VALUE_CHANNELS
    batch, decoder_len, channels = decoder.shape
    y = torch.zeros(batch, decoder_len, 2 * c, dtype=decoder.dtype)
    for b in range(batch):
        for t in range(decoder_len):
            if not decoder_mask[b, t]:
                continue
            y[b, t, :c] = decoder[b, t, :c]
            keys = [s for s in range(encoder.shape[1]) if encoder_mask[b, s] and (not causal or s <= t)]
            scores = [float(decoder[b, t, c:] @ encoder[b, s, c:]) for s in keys]
            if scaled:
                scores = [score / math.sqrt(channels - c) for score in scores]
            top = max(scores)
            exps = [math.exp(score - top) for score in scores]
            for s, e in zip(keys, exps, strict=True):
                y[b, t, c:] += e / sum(exps) * encoder[b, s, :c]
    return y


def mirror_of(x: torch.Tensor) -> torch.Tensor:
    """A stand-in encoder output of the same shape, made position by position from x (keeps padding local)."""
    return torch.tanh(x.roll(1, dims=-1)) * 1.5


@pytest.mark.parametrize("scaled", [False, True])
def test_matches_the_direct_loop(scaled):
    decoder, decoder_mask = padded_batch([4, 6], 5, seed=1)
    encoder, encoder_mask = padded_batch([3, 2], 5, seed=2)
    layer = MirrorAttention(VALUE_CHANNELS, scaled=scaled)
    expected = mirror_attention_loop(decoder, encoder, decoder_mask, encoder_mask, scaled=scaled, causal=False)
    torch.testing.assert_close(layer(decoder, encoder, decoder_mask, encoder_mask), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scaled", [False, True])
def test_causal_matches_the_direct_loop(scaled):
    decoder, mask = padded_batch([5, 3], 5, seed=1)
    encoder = mirror_of(decoder)
    layer = MirrorAttention(VALUE_CHANNELS, scaled=scaled, causal=True)
    expected = mirror_attention_loop(decoder, encoder, mask, mask, scaled=scaled, causal=True)
    torch.testing.assert_close(layer(decoder, encoder, mask, mask), expected, atol=1e-5, rtol=1e-5)


def test_split_and_output_shape():
    layer = MirrorAttention(VALUE_CHANNELS)
    h = torch.randn(2, 4, 5)
    value, key = layer.split(h)
    assert torch.equal(value, h[..., :2]) and torch.equal(key, h[..., 2:])
    decoder = torch.randn(2, 3, 5)
    y = layer(decoder, h)
    assert y.shape == (2, 3, 4)
    assert torch.equal(y[..., :2], decoder[..., :2])


def test_no_real_encoder_key_gives_zero_context_and_no_nan():
    decoder = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    encoder = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    encoder_mask = torch.tensor([[False] * 4, [True] * 4])
    y = MirrorAttention(VALUE_CHANNELS)(decoder, encoder, None, encoder_mask)
    assert torch.all(y[0, :, 2:] == 0)
    y.sum().backward()
    assert torch.isfinite(decoder.grad).all() and torch.isfinite(encoder.grad).all()


def test_gradcheck():
    decoder, decoder_mask = padded_batch([3, 2], 4, seed=1)
    encoder, encoder_mask = padded_batch([2, 4], 4, seed=2)
    assert_gradcheck(MirrorAttention(VALUE_CHANNELS, scaled=True), decoder, encoder, decoder_mask, encoder_mask)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_invariant_same_lengths(causal):
    layer = MirrorAttention(VALUE_CHANNELS, causal=causal)
    assert_padding_invariant(layer, 5, call=lambda x, mask: layer(x, mirror_of(x), mask, mask))


def test_padding_invariant_different_lengths():
    layer = MirrorAttention(VALUE_CHANNELS)
    decoder_lengths, encoder_lengths = [3, 6, 2], [5, 2, 4]
    decoder, decoder_mask = padded_batch(decoder_lengths, 5, seed=1)
    encoder, encoder_mask = padded_batch(encoder_lengths, 5, seed=2)
    batched = layer(decoder, encoder, decoder_mask, encoder_mask)
    for index, (t, s) in enumerate(zip(decoder_lengths, encoder_lengths, strict=True)):
        alone = layer(decoder[index : index + 1, :t], encoder[index : index + 1, :s])
        torch.testing.assert_close(batched[index, :t], alone[0], atol=1e-10, rtol=1e-7)
        assert torch.all(batched[index, t:] == 0)


def test_causal():
    layer = MirrorAttention(VALUE_CHANNELS, causal=True)
    assert_causal(layer, 5, call=lambda x, mask: layer(x, mirror_of(x), mask, mask))


def test_non_causal_layer_looks_ahead():
    layer = MirrorAttention(VALUE_CHANNELS)
    with pytest.raises(AssertionError):
        assert_causal(layer, 5, call=lambda x, mask: layer(x, mirror_of(x), mask, mask))


def test_invalid_settings():
    with pytest.raises(ValueError, match="value_channels"):
        MirrorAttention(0)


def test_invalid_input():
    layer = MirrorAttention(VALUE_CHANNELS)
    with pytest.raises(ValueError, match=r"decoder_out of shape \(B, T, C\)"):
        layer(torch.randn(3, 5), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"encoder_out of shape \(B, T, C\)"):
        layer(torch.randn(2, 3, 5), torch.randn(2, 3, 5, 1))
    with pytest.raises(ValueError, match="value_channels=2"):
        layer(torch.randn(2, 3, 2), torch.randn(2, 3, 2))
    with pytest.raises(ValueError, match=r"decoder_out.*\(B, T, 5\)"):
        layer(torch.randn(2, 3, 4), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="batch size"):
        layer(torch.randn(1, 3, 5), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="causal"):
        MirrorAttention(VALUE_CHANNELS, causal=True)(torch.randn(2, 3, 5), torch.randn(2, 4, 5))
