import pytest

from sandglass.bench import BenchConfig, Direction
from sandglass.config import ConfigError


def test_defaults_are_the_issue_settings():
    config = BenchConfig()
    assert (config.budget, config.beam, config.threads, config.batch_size) == (1800.0, 5, 2, 64)
    assert config.directions == (Direction("de", "en"),)
    assert (config.sandglass_preset, config.transformer_preset) == ("base", "transformer-base")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"budget": 0}, "budget must be above zero"),
        ({"beam": 0}, "beam must be a positive integer"),
        ({"ctc_beam": -1}, "ctc_beam must be 0"),
        ({"directions": ()}, "at least one direction"),
        ({"directions": (Direction("de", "de"),)}, "both 'de'"),
        ({"sandglass_preset": "transformer-tiny"}, "is a transformer model, not sandglass"),
        ({"transformer_preset": "tiny"}, "is a sandglass model, not transformer"),
        ({"transformer_preset": "nope"}, "unknown preset"),
        ({"validate_every": 0}, "validate_every"),
        ({"decode_precision": "fp16"}, "decode_precision must be one of auto, float32, bfloat16, both"),
    ],
)
def test_unusable_settings_raise_config_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig(**settings)


def test_direction_name_and_reverse():
    assert Direction("en", "de").name == "en-de" and Direction("en", "de").reversed() == Direction("de", "en")


def test_to_dict_is_json_ready():
    raw = BenchConfig().to_dict()
    assert raw["directions"] == [{"src": "de", "tgt": "en"}]
    assert isinstance(raw["data_dir"], str) and isinstance(raw["output_dir"], str)


@pytest.mark.parametrize(
    ("setting", "native", "expected"),
    [
        ("auto", True, ("float32", "bfloat16")),
        ("auto", False, ("float32",)),
        ("both", False, ("float32", "bfloat16")),
        ("float32", True, ("float32",)),
        ("bfloat16", False, ("bfloat16",)),
    ],
)
def test_decode_precisions_add_bf16_where_the_cpu_multiplies_it_natively(monkeypatch, setting, native, expected):
    monkeypatch.setattr("sandglass.precision.cpu_has_bfloat16_units", lambda: native)
    assert BenchConfig(decode_precision=setting).decode_precisions() == expected
