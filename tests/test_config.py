import json

import pytest

from sandglass.config import (
    CONFIG_VERSION,
    PRESETS,
    ConfigError,
    DataConfig,
    OriginalConfig,
    RunConfig,
    SandGlassConfig,
    TrainConfig,
    TransformerConfig,
    check_config,
    preset,
)


def run_config(name: str) -> RunConfig:
    chosen = preset(name)
    return RunConfig(model=chosen.model, train=chosen.train)


def round_trip(config: RunConfig) -> RunConfig:
    return RunConfig.from_dict(json.loads(config.to_json()))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_survives_a_json_round_trip(name):
    config = run_config(name)
    loaded = round_trip(config)
    assert loaded == config
    assert type(loaded.model) is type(config.model)
    assert loaded.version == CONFIG_VERSION


def test_tuples_come_back_as_tuples():
    config = RunConfig(
        model=OriginalConfig(kernel_sizes=(5, 3, 1), reduce_factors=(3, 2)),
        train=TrainConfig(betas=(0.8, 0.95)),
    )
    loaded = round_trip(config)
    assert loaded.model.kernel_sizes == (5, 3, 1) and isinstance(loaded.model.kernel_sizes, tuple)
    assert loaded.model.reduce_factors == (3, 2) and isinstance(loaded.model.reduce_factors, tuple)
    assert loaded.train.betas == (0.8, 0.95) and isinstance(loaded.train.betas, tuple)


def test_non_default_values_of_every_section_survive(tmp_path):
    config = RunConfig(
        model=TransformerConfig(d_model=32, num_heads=8, label_smoothing=0.0),
        data=DataConfig(dataset="synthetic", task="reconstruct", data_dir="/data", vocab_size=123),
        train=TrainConfig(max_steps=7, max_time=1.5, patience=None, schedule="cosine"),
    )
    path = tmp_path / "config.json"
    path.write_text(config.to_json(), encoding="utf-8")
    assert RunConfig.load(path) == config


def test_a_model_section_without_arch_is_sandglass():
    raw = RunConfig().to_dict()
    del raw["model"]["arch"]
    assert isinstance(RunConfig.from_dict(raw).model, SandGlassConfig)


def test_unknown_architecture_is_named():
    raw = RunConfig().to_dict()
    raw["model"]["arch"] = "lstm"
    with pytest.raises(ConfigError, match="unknown architecture 'lstm'"):
        RunConfig.from_dict(raw)


@pytest.mark.parametrize("section", ["model", "data", "train"])
def test_unknown_setting_in_a_section_is_named(section):
    raw = RunConfig().to_dict()
    raw[section]["colour"] = "blue"
    with pytest.raises(ConfigError, match=rf"unknown {section} setting\(s\) colour"):
        RunConfig.from_dict(raw)


def test_a_setting_of_another_architecture_is_unknown():
    raw = RunConfig(model=TransformerConfig()).to_dict()
    raw["model"]["encoder"] = "C-C"  # a SandGlass field
    with pytest.raises(ConfigError, match="encoder"):
        RunConfig.from_dict(raw)


@pytest.mark.parametrize("version", [CONFIG_VERSION + 1, 0, None])
def test_another_version_is_refused_with_the_version(version):
    raw = RunConfig().to_dict()
    if version is None:
        del raw["version"]
    else:
        raw["version"] = version
    with pytest.raises(ConfigError, match=f"config version {version!r}"):
        RunConfig.from_dict(raw)


def test_load_reports_a_missing_or_damaged_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load(tmp_path / "config.json")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.load(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="JSON object"):
        RunConfig.load(tmp_path / "list.json")


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_returns_copies(name):
    original_model = json.dumps(vars(PRESETS[name].model))
    original_train = json.dumps(vars(PRESETS[name].train))
    chosen = preset(name)
    assert chosen.model == PRESETS[name].model and chosen.train == PRESETS[name].train
    if isinstance(chosen.model, OriginalConfig):
        chosen.model.sequence_length = 999
    else:
        chosen.model.d_model = 999
    chosen.train.lr = 123.0
    assert json.dumps(vars(PRESETS[name].model)) == original_model
    assert json.dumps(vars(PRESETS[name].train)) == original_train
    assert preset(name).model == PRESETS[name].model


def test_check_config_names_the_field_and_the_rule():
    config = RunConfig(data=DataConfig(dataset="reverse", symbols=0))
    with pytest.raises(ConfigError, match=r"\[data\] symbols must be above zero, got 0") as raised:
        check_config(config)
    assert raised.value.field == "symbols"
    config = RunConfig(data=DataConfig(dataset="reverse", min_symbols=9, max_symbols=4))
    with pytest.raises(ConfigError, match="min_symbols \\(9\\) is above max_symbols \\(4\\)"):
        check_config(config)
    check_config(RunConfig(data=DataConfig(dataset="reverse", min_symbols=4, max_symbols=4)))


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_activation_dropout_is_a_probability(value):
    with pytest.raises(ConfigError, match=r"\[model\] activation_dropout must be in \[0, 1\)"):
        check_config(RunConfig(model=SandGlassConfig(activation_dropout=value)))
    check_config(RunConfig(model=SandGlassConfig(activation_dropout=0.0)))
    check_config(RunConfig(model=SandGlassConfig(activation_dropout=None)))
