import dataclasses
import re

import pytest

from sandglass.config import preset
from sandglass.models.build import build_model
from tests.cli.runs import make_run, run_cli


def total_params(output: str) -> int:
    return int(re.search(r"Total params: ([\d,]+)", output).group(1).replace(",", ""))


def row_params(output: str) -> list[int]:
    """The last cell of every table row: a layer's own parameters."""
    cells = [line.split("│")[-2].strip().replace(",", "") for line in output.splitlines() if line.startswith("│")]
    return [int(cell) for cell in cells if cell.isdigit()]


@pytest.mark.parametrize("name", ["tiny", "transformer-tiny", "original"])
def test_preset_totals_equal_the_parameter_count(name):
    result = run_cli("summary", "--preset", name, "--vocab-size", "300", "--length", "8")
    assert result.exit_code == 0, result.stderr
    model = build_model(preset(name).model, 300)
    assert total_params(result.stdout) == sum(parameter.numel() for parameter in model.parameters())
    assert f"Trainable params: {total_params(result.stdout):,}" in result.stdout
    assert sum(row_params(result.stdout)) == total_params(result.stdout)  # the rows add up to the total
    assert "embed" in result.stdout


def test_checkpoint_and_config_summaries(tmp_path):
    run_dir = make_run(tmp_path / "run", max_length=8)
    from_checkpoint = run_cli("summary", "--checkpoint", str(run_dir))
    assert from_checkpoint.exit_code == 0, from_checkpoint.stderr
    config = tmp_path / "model.toml"
    config.write_text('[model]\npreset = "transformer-tiny"\nffn_dim = 32\n[data]\nvocab_size = 64\n', encoding="utf-8")
    from_config = run_cli("summary", "--config", str(config))
    assert from_config.exit_code == 0, from_config.stderr
    smaller = build_model(dataclasses.replace(preset("transformer-tiny").model, ffn_dim=32), 64)
    assert total_params(from_config.stdout) == sum(parameter.numel() for parameter in smaller.parameters())
    assert total_params(from_checkpoint.stdout) != total_params(from_config.stdout)
