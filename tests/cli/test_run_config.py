import pytest

import sandglass.cli.train as train_module
from sandglass.cli.run_config import build_run_config, default_run_dir, read_config_file
from sandglass.config import ConfigError, RunConfig, TransformerConfig
from sandglass.training import TrainingResult
from tests.cli.runs import run_cli

CONFIG = """
[model]
preset = "transformer-tiny"
ffn-dim = 96

[data]
dataset = "reverse"
vocab_size = 70

[train]
lr = 0.002
max_time = "1h30m"
max_steps = 40
"""


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Runs of `sandglass train` that record what they would train instead of training."""
    calls = []

    def fake_train(config, run_dir, *, resume=False, callbacks=None, data_cache=None):
        calls.append((config, run_dir, resume))
        result = TrainingResult(run_dir, steps=0, epochs=0, best_bleu=None, stopped_because="max_steps", elapsed=0.0)
        callbacks.training_finished(result)  # as the trainer reports its end
        return result

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.chdir(tmp_path)
    return calls


def test_toml_file_with_command_line_override(captured, tmp_path):
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    result = run_cli("train", "--config", "run.toml", "--lr", "0.01", "--vocab-size", "80", "--max-time", "20m")
    assert result.exit_code == 0, result.stderr
    [(config, run_dir, resume)] = captured
    assert isinstance(config.model, TransformerConfig) and config.model.ffn_dim == 96  # file over the preset
    assert config.model.d_model == 64  # the preset's value
    assert config.data.dataset == "reverse" and config.data.vocab_size == 80  # command line over the file
    assert config.train.lr == 0.01 and config.train.max_time == 1200.0 and config.train.max_steps == 40
    assert config.train.warmup_steps == 100  # the preset's training settings fill in the rest
    assert run_dir.parent.name == "checkpoints" and run_dir.name.startswith("transformer-tiny-reverse-")
    assert not resume and "finished" in result.stdout


def test_command_line_preset_replaces_the_files_model(captured, tmp_path):
    (tmp_path / "run.toml").write_text('[model]\npreset = "transformer-tiny"\n[train]\nseed = 7\n', encoding="utf-8")
    result = run_cli("train", "--config", "run.toml", "--preset", "tiny", "--run-dir", "mine")
    assert result.exit_code == 0, result.stderr
    [(config, run_dir, _)] = captured
    assert config.model.arch == "sandglass" and config.train.seed == 7 and str(run_dir) == "mine"


def test_resume_keeps_the_runs_config_and_takes_new_training_limits(captured, tmp_path):
    saved = build_run_config(preset_name="tiny", data={"dataset": "copy"}, train={"max_steps": 10})
    run_dir = tmp_path / "checkpoints" / "old"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(saved.to_json(), encoding="utf-8")
    (run_dir / "trainer.pt").write_bytes(b"")
    result = run_cli("train", "--resume", "--max-steps", "20")
    assert result.exit_code == 0, result.stderr
    [(config, resumed_dir, resume)] = captured
    assert resume and resumed_dir == run_dir.relative_to(tmp_path)
    assert config.data == saved.data and config.model == saved.model and config.train.max_steps == 20


def test_build_run_config_layers_and_checks():
    config = build_run_config(arch="transformer", train={"max_epochs": 3, "lr": None})
    assert config.model == TransformerConfig() and config.train.max_epochs == 3 and config.train.lr == 1e-3
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"\[train\] validate_every must be above zero"):
        build_run_config(train={"validate_every": 0})
    with pytest.raises(ConfigError, match=r"\[model\] dropout must be in \[0, 1\)"):
        build_run_config(file_sections={"model": {"dropout": 1.5}})
    with pytest.raises(ConfigError, match=r"\[train\] betas must be a list of 2 numbers"):
        build_run_config(file_sections={"train": {"betas": [0.9]}})
    with pytest.raises(ConfigError, match=r"\[train\] seed must be an integer"):
        build_run_config(train={"seed": True})


def test_a_config_error_names_an_option_only_where_the_command_line_has_one():
    with pytest.raises(ConfigError, match=r"\(set by --warmup or the --config file\)$"):
        build_run_config(train={"warmup_steps": -1})
    with pytest.raises(ConfigError, match=r"\(set by --validate-every or the --config file\)$"):
        build_run_config(train={"validate_every": 0})
    in_the_file = r"\(set in the --config file or the preset\)$"
    with pytest.raises(ConfigError, match=r"activation_dropout must be in \[0, 1\), got 1.5 " + in_the_file):
        build_run_config(file_sections={"model": {"activation_dropout": 1.5}}, train={"lr": None})
    with pytest.raises(ConfigError, match=r"clip_norm must be above zero, got 0 " + in_the_file):
        build_run_config(file_sections={"train": {"clip_norm": 0}})


def test_config_file_keys_are_normalized(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nmax-time = "2m"\nwarmup_steps = 5\n', encoding="utf-8")
    assert read_config_file(path) == {"train": {"max_time": 120.0, "warmup_steps": 5}}


def test_default_run_dirs_are_new_and_named_after_the_data(tmp_path):
    first = default_run_dir("tiny", "reverse", tmp_path)
    first.mkdir()
    second = default_run_dir("tiny", "reverse", tmp_path)
    assert second != first and second.name.startswith("tiny-reverse-")
    assert default_run_dir("base", "corpus/train.de.gz,corpus/train.en.gz", tmp_path).name.startswith("base-train-")
