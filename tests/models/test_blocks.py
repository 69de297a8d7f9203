import pytest
import torch
import torch.nn.functional as F

from sandglass.layers.augmented_conv import AugmentedConv
from sandglass.layers.conv import Conv
from sandglass.layers.dot_product_kernel_conv import DotProductKernelConv
from sandglass.layers.fc_generated_kernel_conv import FCGeneratedKernelConv
from sandglass.layers.kernel_weighted_conv import KernelWeightedConv
from sandglass.layers.mbconv import MBConv
from sandglass.layers.reverse_conv import ReverseConv
from sandglass.layers.transformer_block import TransformerBlock
from sandglass.models.blocks import BLOCK_LETTERS, BlockStack, ResidualConvBlock, make_block, parse_spec
from tests.layers.properties import assert_causal, assert_padding_invariant, padded_batch

DIM = 8
WRAPPED_LAYERS = {
    "C": Conv,
    "R": ReverseConv,
    "W": KernelWeightedConv,
    "G": FCGeneratedKernelConv,
    "D": DotProductKernelConv,
    "A": AugmentedConv,
}


pytestmark = pytest.mark.usefixtures("single_thread")


def block(letter: str, *, causal: bool = False, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return make_block(letter, DIM, kernel_size=3, num_heads=2, ffn_ratio=2, max_distance=16, dropout=0.0, causal=causal)


def test_parse_spec_ignores_spaces_and_case():
    assert parse_spec(" c - T-m ", "encoder") == ["C", "T", "M"]
    assert parse_spec("c-r-w-g-d-a-m-t", "output") == list("CRWGDAMT")


@pytest.mark.parametrize("spec", ["", "  ", " - "])
def test_an_empty_spec_is_no_blocks(spec):
    assert parse_spec(spec, "center") == []


@pytest.mark.parametrize("spec, bad", [("C-X", "X"), ("CT", "CT"), ("C-1", "1")])
@pytest.mark.parametrize("field", ["encoder", "center", "output"])
def test_an_unknown_letter_is_named_with_its_field(field, spec, bad):
    with pytest.raises(ValueError, match=rf"{field} spec .* unknown block type '{bad}'"):
        parse_spec(spec, field)


def test_make_block_refuses_an_unknown_letter():
    with pytest.raises(ValueError, match="unknown block type 'X'"):
        block("X")


@pytest.mark.parametrize("letter", BLOCK_LETTERS)
def test_make_block_builds_the_named_layer(letter):
    made = block(letter)
    if letter == "T":
        assert isinstance(made, TransformerBlock)
    elif letter == "M":
        assert isinstance(made, MBConv)
    else:
        assert isinstance(made, ResidualConvBlock) and isinstance(made.layer, WRAPPED_LAYERS[letter])


@pytest.mark.parametrize("letter", BLOCK_LETTERS)
def test_each_block_keeps_the_shape_and_zeros_padding(letter):
    made = block(letter).double().eval()
    x, mask = padded_batch([7, 3, 5], DIM)
    y = made(x, mask)
    assert y.shape == x.shape
    assert torch.equal(y[~mask], torch.zeros_like(y[~mask]))
    assert y[mask].abs().sum() > 0


@pytest.mark.parametrize("letter", BLOCK_LETTERS)
def test_each_block_is_padding_invariant(letter):
    assert_padding_invariant(block(letter), DIM)


@pytest.mark.parametrize("letter", BLOCK_LETTERS)
def test_each_block_can_be_causal(letter):
    assert_causal(block(letter, causal=True), DIM, length=8)


def test_residual_conv_block_follows_its_equation():
    made = block("C").double().eval()
    x, mask = padded_batch([6, 4], DIM)
    y = made(x, mask)
    for index, length in enumerate([6, 4]):
        real = x[index : index + 1, :length]
        normed = F.layer_norm(real, (DIM,), made.norm.weight, made.norm.bias, made.norm.eps)
        inner = made.layer(normed, None)
        expected = real + 0.5 * inner * (1 + torch.erf(inner / 2**0.5))
        torch.testing.assert_close(y[index, :length], expected[0], atol=1e-10, rtol=0)


def test_block_stack_applies_its_blocks_in_order():
    first, second = block("C", seed=1).double().eval(), block("T", seed=2).double().eval()
    stack = BlockStack([first, second])
    x, mask = padded_batch([5, 2], DIM)
    torch.testing.assert_close(stack(x, mask), second(first(x, mask), mask), atol=0, rtol=0)
    assert torch.equal(BlockStack([])(x, mask), x)
