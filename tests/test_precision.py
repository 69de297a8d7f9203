"""bf16 autocast: where ``auto`` picks it, and that the forward pass really runs in bf16 under it."""

import pytest
import torch

import sandglass.precision as precision_module
from sandglass.config import ConfigError, RunConfig, SandGlassConfig, TrainConfig, check_config
from sandglass.inference import generate
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer
from sandglass.precision import PRODUCT_LAYERS, autocast_for, uses_bfloat16, with_product_weights_in

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


def all_block_models() -> tuple[SandGlass, Transformer]:
    """A SandGlass with a block of every type, and a small Transformer."""
    torch.manual_seed(0)
    sandglass = SandGlass(
        40,
        SandGlassConfig(
            d_model=32,
            encoder="C-W",
            blocks_per_stage=1,
            center="G-D-A-M-T",
            output="T",
            num_heads=2,
            mirror_key_dim=8,
            max_distance=8,
            dropout=0.0,
        ),
    )
    transformer = Transformer(40, d_model=32, num_heads=2, encoder_layers=1, decoder_layers=1, ffn_dim=64)
    return sandglass.eval(), transformer.eval()


def test_a_model_with_its_product_weights_cast_once_computes_what_autocast_computes():
    src = torch.randint(4, 40, (3, 9))
    src_mask = torch.ones_like(src, dtype=torch.bool)
    src_mask[1, 6:] = False
    for model in all_block_models():
        cast = with_product_weights_in(model, torch.bfloat16)
        product_layers = [module for module in cast.modules() if isinstance(module, PRODUCT_LAYERS)]
        assert product_layers and all(layer.weight.dtype == torch.bfloat16 for layer in product_layers)
        assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
        with torch.no_grad(), autocast_for(CPU, "bfloat16"):
            assert generate(cast, src, src_mask) == generate(model, src, src_mask)
            if hasattr(model, "features"):
                torch.testing.assert_close(cast.features(src, src_mask)[0], model.features(src, src_mask)[0])
