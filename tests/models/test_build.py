import pytest
import torch

from sandglass.config import PRESETS, OriginalConfig, SandGlassConfig, TransformerConfig
from sandglass.models.build import build_model, max_source_tokens
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer

VOCAB = 20
CLASSES = {"sandglass": SandGlass, "transformer": Transformer, "original": OriginalSandGlass}


def output_size(model: torch.nn.Module) -> int:
    if isinstance(model, OriginalSandGlass):
        return model.output.out_features
    if isinstance(model, SandGlass):
        return model.embed.num_embeddings
    return model.embedding.num_embeddings


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_builds_its_architecture(name):
    config = PRESETS[name].model
    model = build_model(config, VOCAB)
    assert type(model) is CLASSES[config.arch]
    assert output_size(model) == VOCAB
    assert model.max_length == max_source_tokens(config)


def test_the_transformer_gets_every_setting():
    config = TransformerConfig(
        d_model=24, num_heads=3, encoder_layers=2, decoder_layers=1, ffn_dim=40, dropout=0.25, max_length=17
    )
    model = build_model(config, VOCAB)
    assert model.d_model == 24
    assert model.encoder[0].self_attention.num_heads == 3
    assert len(model.encoder) == 2 and len(model.decoder) == 1
    assert model.encoder[0].ffn[0].out_features == 40
    assert model.dropout.p == 0.25
    assert model.max_length == 17


def test_the_sandglass_models_keep_their_configuration():
    sandglass_config = SandGlassConfig(d_model=16, encoder="C-C-C", num_heads=2, mirror_key_dim=4, max_length=40)
    sandglass = build_model(sandglass_config, VOCAB)
    assert sandglass.config == sandglass_config and len(sandglass.encoder) == 3
    original_config = OriginalConfig(sequence_length=8, d_model=8, key_channels=4, center_hidden=16)
    original = build_model(original_config, VOCAB)
    assert original.config == original_config and original.sequence_length == 8


def test_max_source_tokens():
    assert max_source_tokens(OriginalConfig(sequence_length=12)) == 12
    assert max_source_tokens(SandGlassConfig(max_length=33)) == 33
    assert max_source_tokens(TransformerConfig(max_length=44)) == 44


def test_an_unknown_configuration_is_a_type_error():
    with pytest.raises(TypeError, match="dict"):
        build_model({"arch": "sandglass"}, VOCAB)
