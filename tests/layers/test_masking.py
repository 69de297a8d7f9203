import pytest
import torch

from sandglass.layers.masking import padding_outputs_unzeroed, zero_output_padding, zero_padding


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(1.0, 13.0).view(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    return x, mask


def test_zero_padding_zeroes_exactly_the_padding_positions():
    x, mask = batch()
    y = zero_padding(x, mask)
    assert torch.equal(y[mask], x[mask])
    assert not y[~mask].any()
    assert zero_padding(x, None) is x


def test_output_padding_is_zeroed_by_default_and_left_inside_the_context():
    x, mask = batch()
    assert torch.equal(zero_output_padding(x, mask), zero_padding(x, mask))
    with padding_outputs_unzeroed():
        assert zero_output_padding(x, mask) is x
        assert not zero_padding(x, mask)[~mask].any()  # what a layer reads across positions is still zeroed
    assert torch.equal(zero_output_padding(x, mask), zero_padding(x, mask))


def test_the_context_is_restored_after_an_exception_and_when_nested():
    x, mask = batch()
    with pytest.raises(RuntimeError), padding_outputs_unzeroed():
        raise RuntimeError("inside")
    assert not zero_output_padding(x, mask)[~mask].any()
    with padding_outputs_unzeroed():
        with padding_outputs_unzeroed():
            pass
        assert zero_output_padding(x, mask) is x
    assert not zero_output_padding(x, mask)[~mask].any()
