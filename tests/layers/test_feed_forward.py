import pytest
import torch

from sandglass.layers.feed_forward import FeedForward
from tests.layers.properties import assert_gradcheck, assert_padding_invariant, padded_batch


def test_feed_forward_matches_reference():
    layer = FeedForward(4, ffn_ratio=3).double()
    x, mask = padded_batch([5, 2], 4)
    expected = torch.zeros_like(x)
    for b in range(2):
        for t in range(5):
            if mask[b, t]:
                hidden = layer.fc1.weight @ x[b, t] + layer.fc1.bias
                hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2**0.5))
                expected[b, t] = layer.fc2.weight @ hidden + layer.fc2.bias
    torch.testing.assert_close(layer(x, mask), expected, atol=1e-5, rtol=1e-5)


def test_feed_forward_gradcheck():
    x, mask = padded_batch([5, 3], 4)
    assert_gradcheck(FeedForward(4, ffn_ratio=2), x.clamp(max=3.0), mask)


def test_feed_forward_padding_invariant():
    assert_padding_invariant(FeedForward(4), channels=4)


def test_feed_forward_shapes():
    x, mask = padded_batch([6, 4], 8, dtype=torch.float32)
    y = FeedForward(8)(x, mask)
    assert y.shape == (2, 6, 8)
    assert torch.all(y[1, 4:] == 0)
    assert FeedForward(8)(x).shape == (2, 6, 8)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"dim": 0}, "dim"), ({"dim": 4, "ffn_ratio": 0}, "ffn_ratio"), ({"dim": 4, "dropout": -1}, "dropout")],
)
def test_feed_forward_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FeedForward(**kwargs)


def test_feed_forward_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\(B, T, C=4\)"):
        FeedForward(4)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        FeedForward(4)(torch.randn(2, 3, 5))
