"""MaskedBatchNorm1d: batch statistics over real positions only."""

import pytest
import torch
from torch import nn

from sandglass.layers.batch_norm import MaskedBatchNorm1d
from tests.layers.properties import assert_gradcheck, assert_padding_invariant, padded_batch


def batch_norm_loop(x: torch.Tensor, mask: torch.Tensor, layer: MaskedBatchNorm1d) -> torch.Tensor:
    """y = (x - μ) / sqrt(σ² + eps) · γ + β per channel; μ and biased σ² over the batch's real positions."""
    y = torch.zeros_like(x)
    for c in range(x.shape[-1]):
        values = [x[b, t, c].item() for b in range(x.shape[0]) for t in range(x.shape[1]) if mask[b, t]]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        for b in range(x.shape[0]):
            for t in range(x.shape[1]):
                if mask[b, t]:
                    normalized = (x[b, t, c] - mean) / (var + layer.eps) ** 0.5
                    y[b, t, c] = normalized * layer.weight[c] + layer.bias[c]
    return y


def randomized(layer: MaskedBatchNorm1d) -> MaskedBatchNorm1d:
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
    return layer


def test_training_matches_the_direct_loop():
    torch.manual_seed(0)
    layer = randomized(MaskedBatchNorm1d(3)).double()
    x, mask = padded_batch([5, 2, 4], 3)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, mask), batch_norm_loop(x, mask, layer), atol=1e-5, rtol=1e-5)


def test_running_statistics_use_real_positions_and_unbiased_variance():
    layer = MaskedBatchNorm1d(3, momentum=0.25).double()
    x, mask = padded_batch([5, 2, 4], 3)
    layer(x, mask)
    real = x[mask]
    torch.testing.assert_close(layer.running_mean, 0.25 * real.mean(dim=0))
    torch.testing.assert_close(layer.running_var, 0.75 + 0.25 * real.var(dim=0, unbiased=True))
    assert layer.num_batches_tracked.item() == 1


def test_matches_torch_batch_norm_without_padding():
    torch.manual_seed(0)
    ours = randomized(MaskedBatchNorm1d(4, momentum=0.2)).double()
    reference = nn.BatchNorm1d(4, momentum=0.2).double()
    reference.load_state_dict(ours.state_dict())
    for _ in range(2):
        x = torch.randn(3, 5, 4, dtype=torch.float64)
        torch.testing.assert_close(ours(x), reference(x.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    ours.eval()
    reference.eval()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x), reference(x.transpose(1, 2)).transpose(1, 2))


def test_training_statistics_ignore_padding():
    """A padded batch normalizes exactly like the same real tokens concatenated into one sequence."""
    lengths = [5, 2, 4]
    padded = randomized(MaskedBatchNorm1d(3)).double()
    concatenated = MaskedBatchNorm1d(3).double()
    concatenated.load_state_dict(padded.state_dict())
    x, mask = padded_batch(lengths, 3)
    y = padded(x, mask)
    y_concatenated = concatenated(x[mask].unsqueeze(0))
    torch.testing.assert_close(y[mask], y_concatenated[0], atol=1e-10, rtol=1e-7)
    assert torch.all(y[~mask] == 0)
    torch.testing.assert_close(padded.running_mean, concatenated.running_mean)
    torch.testing.assert_close(padded.running_var, concatenated.running_var)


def test_padding_invariant_in_eval():
    assert_padding_invariant(randomized(MaskedBatchNorm1d(3)), 3)


def test_gradcheck_in_training():
    x, mask = padded_batch([4, 3], 2)
    assert_gradcheck(randomized(MaskedBatchNorm1d(2)).train(), x, mask)


def test_output_shape():
    assert MaskedBatchNorm1d(4)(torch.randn(2, 6, 4)).shape == (2, 6, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_features": 0}, "num_features"),
        ({"num_features": 3, "eps": 0.0}, "eps"),
        ({"num_features": 3, "momentum": 1.5}, "momentum"),
    ],
)
def test_invalid_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MaskedBatchNorm1d(**kwargs)


def test_invalid_input():
    layer = MaskedBatchNorm1d(3)
    with pytest.raises(ValueError, match=r"\(B, T, C=3\)"):
        layer(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        layer(torch.randn(2, 6, 4))
