"""bf16 autocast: where ``auto`` picks it, and that the forward pass really runs in bf16 under it."""

import pytest
import torch

import sandglass.precision as precision_module
from sandglass.config import ConfigError, RunConfig, TrainConfig, check_config
from sandglass.precision import autocast_for, uses_bfloat16

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize("has_units", [True, False])
def test_auto_picks_bfloat16_on_cuda_and_on_cpus_with_bf16_units(monkeypatch, has_units):
    monkeypatch.setattr(precision_module, "cpu_has_bfloat16_units", lambda: has_units)
    assert uses_bfloat16(CUDA, "auto")
    assert uses_bfloat16(CPU, "auto") is has_units
    assert uses_bfloat16(CPU, "bfloat16") and uses_bfloat16(CUDA, "bfloat16")
    assert not uses_bfloat16(CPU, "float32") and not uses_bfloat16(CUDA, "float32")


def test_the_cpu_check_reads_the_flags_of_this_machine():
    assert isinstance(precision_module.cpu_has_bfloat16_units(), bool)


@pytest.mark.parametrize(("precision", "dtype"), [("bfloat16", torch.bfloat16), ("float32", torch.float32)])
def test_autocast_runs_matrix_products_in_the_chosen_precision(precision, dtype):
    layer = torch.nn.Linear(4, 3)
    with autocast_for(CPU, precision):
        output = layer(torch.randn(2, 4))
    assert output.dtype == dtype
    assert layer.weight.dtype == torch.float32


def test_an_unknown_precision_is_named():
    config = RunConfig(train=TrainConfig(precision="float16"))
    with pytest.raises(ConfigError, match="precision must be one of auto, float32, bfloat16") as caught:
        check_config(config)
    assert caught.value.field == "precision"
