"""The property checks themselves must be able to fail: run them on layers known to break each property."""

import pytest
import torch
from torch import nn

from tests.layers.properties import assert_causal, assert_checkpointing_exact, assert_padding_invariant


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


class _UnpacksTwice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (first,) = ctx.saved_tensors
        (second,) = ctx.saved_tensors
        return grad * (first + second)


class UnpacksTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3, dtype=torch.float64))

    def forward(self, x, mask):
        return _UnpacksTwice.apply(x * self.scale)


def test_checkpointing_check_catches_a_second_unpack():
    with pytest.raises(RuntimeError, match="unpacked once"):
        assert_checkpointing_exact(UnpacksTwice, 3, use_reentrant=False)
