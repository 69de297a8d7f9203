import pytest
import torch
import torch.nn.functional as F

from sandglass.layers.squeeze_excitation import SqueezeExcitation, SqueezeExcitation2d
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return module


def gate_of(layer, summary):
    hidden = F.gelu(summary @ layer.reduce.weight.T + layer.reduce.bias)
    return torch.sigmoid(hidden @ layer.expand.weight.T + layer.expand.bias)


def reference_se(layer, x, mask, causal):
    batch, length, _ = x.shape
    out = torch.zeros_like(x)
    for b in range(batch):
        for t in range(length):
            if not mask[b, t]:
                continue
            seen = [s for s in range(length) if mask[b, s] and (s <= t or not causal)]
            summary = sum(x[b, s] for s in seen) / len(seen)
            out[b, t] = x[b, t] * gate_of(layer, summary)
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_squeeze_excitation_matches_reference(causal):
    layer = randomize_(SqueezeExcitation(6, hidden_channels=2, causal=causal)).double()
    x, mask = padded_batch([5, 3, 1], 6)
    torch.testing.assert_close(layer(x, mask), reference_se(layer, x, mask, causal), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_squeeze_excitation_gradcheck(causal):
    layer = randomize_(SqueezeExcitation(4, hidden_channels=2, causal=causal))
    x, mask = padded_batch([5, 3], 4)
    assert_gradcheck(layer, x.clamp(max=3.0), mask)


@pytest.mark.parametrize("causal", [False, True])
def test_squeeze_excitation_padding_invariant(causal):
    assert_padding_invariant(randomize_(SqueezeExcitation(4, hidden_channels=2, causal=causal)), channels=4)


def test_squeeze_excitation_causal():
    assert_causal(randomize_(SqueezeExcitation(4, hidden_channels=2, causal=True)), channels=4)
    with pytest.raises(AssertionError):
        assert_causal(randomize_(SqueezeExcitation(4, hidden_channels=2)), channels=4)


def test_squeeze_excitation_2d_matches_reference():
    layer = randomize_(SqueezeExcitation2d(3, hidden_channels=2)).double()
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.zeros_like(x)
    for b in range(2):
        summary = torch.stack([x[b, c].sum() / 20 for c in range(3)])
        expected[b] = x[b] * gate_of(layer, summary)[:, None, None]
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_squeeze_excitation_2d_gradcheck():
    assert_gradcheck(
        randomize_(SqueezeExcitation2d(3, hidden_channels=2)), torch.randn(2, 3, 2, 3, dtype=torch.float64)
    )


def test_squeeze_excitation_shapes():
    x, mask = padded_batch([4, 2], 6, dtype=torch.float32)
    y = SqueezeExcitation(6, hidden_channels=3)(x, mask)
    assert y.shape == (2, 4, 6)
    assert torch.all(y[1, 2:] == 0)
    assert SqueezeExcitation2d(6, hidden_channels=3)(torch.randn(2, 6, 3, 5)).shape == (2, 6, 3, 5)


@pytest.mark.parametrize("cls", [SqueezeExcitation, SqueezeExcitation2d])
def test_squeeze_excitation_invalid_settings(cls):
    with pytest.raises(ValueError, match="channels"):
        cls(0, hidden_channels=2)
    with pytest.raises(ValueError, match="hidden_channels"):
        cls(4, hidden_channels=0)


def test_squeeze_excitation_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\(B, T, C=4\)"):
        SqueezeExcitation(4, hidden_channels=2)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        SqueezeExcitation(4, hidden_channels=2)(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"\(B, C=4, H, W\)"):
        SqueezeExcitation2d(4, hidden_channels=2)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        SqueezeExcitation2d(4, hidden_channels=2)(torch.randn(2, 5, 3, 3))
