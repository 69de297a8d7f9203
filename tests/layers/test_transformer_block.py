import pytest
import torch

from sandglass.layers.transformer_block import TransformerBlock
from tests.layers.properties import assert_causal, assert_gradcheck, assert_padding_invariant, padded_batch
from tests.layers.test_relative_attention import randomize_, reference_attention


def layer_norm(x, norm):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def reference_block(block, x, mask):
    """Both pre-norm residual branches, with attention written out by the loop of the attention tests."""
    x = x + reference_attention(block.attn, layer_norm(x, block.attn_norm), mask)
    hidden = layer_norm(x, block.ffn_norm) @ block.ffn.fc1.weight.T + block.ffn.fc1.bias
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2**0.5))
    x = x + hidden @ block.ffn.fc2.weight.T + block.ffn.fc2.bias
    return x * mask[..., None]


@pytest.mark.parametrize(("shaw", "causal"), [(False, False), (False, True), (True, False), (True, True)])
def test_transformer_block_matches_reference(shaw, causal):
    block = randomize_(TransformerBlock(8, num_heads=2, ffn_ratio=2, max_distance=2, shaw=shaw, causal=causal))
    block = block.double()
    x, mask = padded_batch([6, 3], 8)
    torch.testing.assert_close(block(x, mask), reference_block(block, x, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("shaw", "causal"), [(False, True), (True, False)])
def test_transformer_block_gradcheck(shaw, causal):
    block = randomize_(TransformerBlock(4, num_heads=2, ffn_ratio=2, max_distance=2, shaw=shaw, causal=causal))
    x, mask = padded_batch([5, 3], 4)
    assert_gradcheck(block, x.clamp(max=3.0), mask)


@pytest.mark.parametrize(("shaw", "causal"), [(False, False), (False, True), (True, False), (True, True)])
def test_transformer_block_padding_invariant(shaw, causal):
    block = randomize_(TransformerBlock(8, num_heads=2, max_distance=3, shaw=shaw, causal=causal))
    assert_padding_invariant(block, channels=8)


def test_transformer_block_causal():
    assert_causal(randomize_(TransformerBlock(8, num_heads=2, max_distance=3, causal=True)), channels=8)
    with pytest.raises(AssertionError):
        assert_causal(randomize_(TransformerBlock(8, num_heads=2, max_distance=3)), channels=8)


def test_transformer_block_beyond_max_distance():
    block = randomize_(TransformerBlock(8, num_heads=2, ffn_ratio=1, max_distance=2)).double()
    x, mask = padded_batch([20, 16], 8)
    torch.testing.assert_close(block(x, mask), reference_block(block, x, mask), atol=1e-5, rtol=1e-5)


def dropped_fraction_of_ffn_hidden(block: TransformerBlock) -> float:
    """Train-mode forward; the fraction of exact zeros among the FFN's hidden activations (GELU gives none)."""
    seen = []
    handle = block.ffn.fc2.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    torch.manual_seed(0)
    block.train()(torch.randn(4, 50, 8))
    handle.remove()
    return (seen[0] == 0).float().mean().item()


@pytest.mark.parametrize(
    ("dropout", "activation_dropout", "expected"), [(0.5, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, None, 0.5)]
)
def test_activation_dropout_is_the_ffn_hidden_dropout(dropout, activation_dropout, expected):
    block = TransformerBlock(8, num_heads=2, dropout=dropout, activation_dropout=activation_dropout)
    assert dropped_fraction_of_ffn_hidden(block) == pytest.approx(expected, abs=0.05)
    assert block.attn.attn_dropout.p == dropout


def test_transformer_block_shapes():
    x, mask = padded_batch([5, 2], 8, dtype=torch.float32)
    block = TransformerBlock(8, num_heads=4)
    y = block(x, mask)
    assert y.shape == (2, 5, 8)
    assert torch.all(y[1, 2:] == 0)
    assert block(x).shape == (2, 5, 8)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"dim": 0, "num_heads": 1}, "dim"),
        ({"dim": 8, "num_heads": 3}, "num_heads"),
        ({"dim": 8, "num_heads": 0}, "num_heads"),
        ({"dim": 8, "num_heads": 2, "ffn_ratio": 0}, "ffn_ratio"),
        ({"dim": 8, "num_heads": 2, "max_distance": 0}, "max_distance"),
        ({"dim": 8, "num_heads": 2, "dropout": 1.5}, "dropout"),
        ({"dim": 8, "num_heads": 2, "activation_dropout": -0.1}, "dropout"),
    ],
)
def test_transformer_block_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TransformerBlock(**kwargs)


def test_transformer_block_rejects_wrong_input():
    block = TransformerBlock(8, num_heads=2)
    with pytest.raises(ValueError, match=r"\(B, T, C=8\)"):
        block(torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        block(torch.randn(2, 3, 6))
