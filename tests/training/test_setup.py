import pytest
import torch

from sandglass.training.setup import flushed_denormals


def test_denormals_are_flushed_while_training_and_the_default_comes_back():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    tiny = torch.tensor([1e-40])  # below float32's smallest normal number, 1.18e-38
    with flushed_denormals():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() > 0.0
