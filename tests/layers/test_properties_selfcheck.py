"""The property checks themselves must be able to fail: run them on layers known to break each property."""

import pytest
import torch
from torch import nn

from tests.layers.properties import assert_causal, assert_padding_invariant


class LeaksPadding(nn.Module):
    def forward(self, x, mask):
        return x + x.mean(dim=1, keepdim=True)


class LooksAhead(nn.Module):
    def forward(self, x, mask):
        return x + torch.roll(x, shifts=-1, dims=1)


def test_padding_check_catches_a_leak():
    with pytest.raises(AssertionError):
        assert_padding_invariant(LeaksPadding(), channels=3)


def test_causality_check_catches_a_look_ahead():
    with pytest.raises(AssertionError):
        assert_causal(LooksAhead(), channels=3)
