import json
import os

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from sandglass.checkpoint import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write,
    latest_run,
    load_run,
    load_weights,
    save_weights,
    write_run_files,
)
from sandglass.config import RunConfig, preset
from sandglass.models.build import build_model
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer
from sandglass.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    texts = [" ".join(f"s{index}" for index in range(start, start + 5)) for start in range(20)]
    return Tokenizer.train(texts, vocab_size=30, model_type="word")


def run_config(name: str) -> RunConfig:
    chosen = preset(name)
    return RunConfig(model=chosen.model, train=chosen.train)


def saved_run(run_dir, name: str, tokenizer: Tokenizer) -> nn.Module:
    """A run folder holding a freshly initialized model of preset ``name``; returns that model in eval mode."""
    torch.manual_seed(0)
    config = run_config(name)
    model = build_model(config.model, tokenizer.vocab_size)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)  # not the initialization a rebuilt model would get
    write_run_files(run_dir, config, tokenizer)
    save_weights(model, run_dir / WEIGHTS_FILE)
    return model.eval()


def outputs_of(model: nn.Module, tokenizer: Tokenizer) -> torch.Tensor:
    ids = tokenizer.encode(["s1 s2 s3 s4", "s5 s6"])
    src = torch.tensor([ids[0], ids[1] + [0, 0]])
    src_mask = src != 0
    if isinstance(model, Transformer):
        return model(src, src_mask, torch.tensor([[2, 5, 6], [2, 7, 0]]))
    if isinstance(model, SandGlass):
        return model(src, src_mask).log_probs
    return model(src)


@pytest.mark.parametrize("name", ["transformer-tiny", "tiny"])
def test_a_saved_run_loads_back_with_identical_outputs(tmp_path, tokenizer, name):
    model = saved_run(tmp_path, name, tokenizer)
    loaded = load_run(tmp_path)
    assert loaded.config == run_config(name)
    assert loaded.tokenizer.to_bytes() == tokenizer.to_bytes()
    assert not loaded.model.training
    assert torch.equal(outputs_of(loaded.model, loaded.tokenizer), outputs_of(model, tokenizer))
    assert sorted(os.listdir(tmp_path)) == sorted([CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE])


def test_transformer_weights_are_stored_once(tmp_path, tokenizer):
    model = saved_run(tmp_path, "transformer-tiny", tokenizer)
    stored = load_file(str(tmp_path / WEIGHTS_FILE))
    assert set(stored) == set(model.state_dict())
    assert sum(tensor.numel() for tensor in stored.values()) == sum(
        tensor.numel() for tensor in model.state_dict().values()
    )
    torch.testing.assert_close(stored["embedding.weight"], model.embedding.weight, atol=0, rtol=0)


class TiedPair(nn.Module):
    """Two layers that share one weight, as a tied input/output embedding does."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4, bias=False)
        self.second = nn.Linear(4, 4)
        self.second.weight = self.first.weight


def test_tied_weights_are_saved_once_and_loaded_back_tied(tmp_path):
    torch.manual_seed(0)
    model = TiedPair()
    save_weights(model, tmp_path / WEIGHTS_FILE)
    stored = load_file(str(tmp_path / WEIGHTS_FILE))
    assert sorted(stored) == ["first.weight", "second.bias"]
    torch.manual_seed(1)
    fresh = TiedPair()
    load_weights(fresh, tmp_path / WEIGHTS_FILE)
    assert torch.equal(fresh.first.weight, model.first.weight)
    assert torch.equal(fresh.second.bias, model.second.bias)
    assert fresh.second.weight is fresh.first.weight


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old contents")

    def half_then_fail(temporary):
        temporary.write_bytes(b"new con")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_atomic_write_turns_an_os_error_into_a_checkpoint_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old", encoding="utf-8")

    def disk_full(temporary):
        temporary.write_text("ne", encoding="utf-8")
        raise OSError(28, "No space left on device")

    with pytest.raises(CheckpointError, match="config.json.*No space left on device"):
        atomic_write(path, disk_full)
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["config.json"]


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old", encoding="utf-8")
    atomic_write(path, lambda temporary: temporary.write_text("new", encoding="utf-8"))
    assert path.read_text(encoding="utf-8") == "new"
    assert os.listdir(tmp_path) == ["config.json"]


def test_a_truncated_weights_file_is_a_checkpoint_error(tmp_path, tokenizer):
    saved_run(tmp_path, "tiny", tokenizer)
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is damaged"):
        load_run(tmp_path)


@pytest.mark.parametrize("missing", [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE])
def test_a_missing_file_is_named(tmp_path, tokenizer, missing):
    saved_run(tmp_path, "transformer-tiny", tokenizer)
    (tmp_path / missing).unlink()
    with pytest.raises(CheckpointError, match=missing.replace(".", r"\.")):
        load_run(tmp_path)


def test_a_missing_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nowhere")


def test_a_damaged_tokenizer_is_a_checkpoint_error(tmp_path, tokenizer):
    saved_run(tmp_path, "transformer-tiny", tokenizer)
    (tmp_path / TOKENIZER_FILE).write_bytes(b"not a sentencepiece model")
    with pytest.raises(CheckpointError, match="tokenizer.model"):
        load_run(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path, tokenizer):
    saved_run(tmp_path, "transformer-tiny", tokenizer)
    other = tmp_path / "other"
    saved_run(other, "tiny", tokenizer)
    (tmp_path / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="another architecture"):
        load_run(tmp_path)


def test_weights_of_another_size_are_refused(tmp_path, tokenizer):
    saved_run(tmp_path, "transformer-tiny", tokenizer)
    raw = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["model"]["ffn_dim"] = 64
    (tmp_path / CONFIG_FILE).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_run(tmp_path)


def test_a_config_of_another_version_is_refused(tmp_path, tokenizer):
    saved_run(tmp_path, "tiny", tokenizer)
    raw = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["version"] = 99
    (tmp_path / CONFIG_FILE).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(CheckpointError, match="config version 99"):
        load_run(tmp_path)


def test_latest_run_picks_the_newest(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        (tmp_path / name).mkdir()
        weights = tmp_path / name / WEIGHTS_FILE
        weights.write_bytes(b"")
        os.utime(weights, (1_000_000 - age * 100, 1_000_000 - age * 100))
    (tmp_path / "no-weights").mkdir()
    assert latest_run(tmp_path) == tmp_path / "newest"


def test_latest_run_of_an_empty_root_is_a_checkpoint_error(tmp_path):
    (tmp_path / "untrained").mkdir()
    with pytest.raises(CheckpointError, match="no trained run"):
        latest_run(tmp_path)
    with pytest.raises(CheckpointError, match="no trained run"):
        latest_run(tmp_path / "missing")


def test_a_read_only_folder_is_a_checkpoint_error(tmp_path, tokenizer):
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user that can write to a read-only folder (root)")
        model = build_model(preset("transformer-tiny").model, tokenizer.vocab_size)
        with pytest.raises(CheckpointError, match="permissions"):
            save_weights(model, folder / WEIGHTS_FILE)
        with pytest.raises(CheckpointError, match="permissions"):
            write_run_files(folder, run_config("transformer-tiny"), tokenizer)
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)
