"""``sandglass bench`` and ``sandglass distill`` end to end on tiny data, their settings file and their errors."""

import dataclasses
import json

import pytest

from sandglass.bench.config import Direction
from sandglass.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from sandglass.cli.bench import bench_config, read_bench_file
from sandglass.config import ConfigError, RunConfig, preset
from sandglass.data.corpus import DataSplits
from sandglass.data.synthetic import synthetic_corpus
from sandglass.distill import write_splits
from tests.bench.corpus import write_tiny_multi30k
from tests.bench.results import made_up_result
from tests.cli.runs import make_run, run_cli

TINY = [
    *("--sandglass-preset", "tiny", "--transformer-preset", "transformer-tiny", "--budget", "1s"),
    *("--beam", "2", "--ctc-beam", "0", "--threads", "1", "--vocab-size", "40", "--batch-size", "8"),
    *("--single-sentences", "3", "--speed-runs", "1", "--validate-every", "20", "--decode-precision", "float32"),
]


pytestmark = pytest.mark.usefixtures("single_thread")


def test_bench_trains_both_models_and_writes_its_report(tmp_path):
    data = write_tiny_multi30k(tmp_path / "multi30k")
    output = tmp_path / "out"
    result = run_cli("bench", "--data", str(data), *TINY, "--output", str(output), "--data-cache", str(tmp_path))
    assert result.exit_code == 0, result.stdout + result.stderr
    raw = json.loads((output / "bench.json").read_text())
    models = raw["directions"][0]["models"]
    assert [model["name"] for model in models] == ["transformer", "sandglass"]
    assert [d["method"] for d in models[0]["decoding"]] == ["greedy", "beam2"]
    assert [d["method"] for d in models[1]["decoding"]] == ["ctc-greedy"]  # --ctc-beam 0 skips the CTC beam
    assert (output / "bench.md").is_file() and (output / "validation_bleu.png").is_file()
    assert {d["precision"] for model in models for d in model["decoding"]} == {"float32"}
    expected = ["[de-en] training transformer", "valid  step", "ctc-greedy in float32: BLEU", "both in float32"]
    for text in [*expected, "greedy sentences/s", "wrote"]:
        assert text in result.stdout, text


@pytest.mark.parametrize("command", ["bench", "distill"])
def test_help_shows_an_example_and_is_listed(command):
    assert f"Example: sandglass {command}" in run_cli(command, "--help").stdout
    assert command in run_cli("--help").stdout


def test_merge_joins_two_benches_into_one_table_without_training(tmp_path):
    for name, direction in (("a", ("de", "en")), ("b", ("en", "de"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "bench.json").write_text(made_up_result(direction).to_json())
    result = run_cli(
        "bench",
        "--merge",
        str(tmp_path / "a"),
        "--merge",
        str(tmp_path / "b" / "bench.json"),
        "-o",
        str(tmp_path / "both"),
    )
    assert result.exit_code == 0, result.stderr
    table = (tmp_path / "both" / "bench.md").read_text()
    assert "## de → en" in table and "## en → de" in table


def test_merging_one_direction_twice_is_a_usage_error(tmp_path):
    (tmp_path / "bench.json").write_text(made_up_result(("de", "en")).to_json())
    result = run_cli("bench", "--merge", str(tmp_path), "--merge", str(tmp_path), "-o", str(tmp_path / "both"))
    assert result.exit_code == 2 and "de-en is in more than one bench.json" in result.stderr


def test_bench_without_its_data_folder_says_how_to_point_at_one(tmp_path):
    result = run_cli("bench", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no Multi30k folder at") and "--data DIR" in result.stderr
    assert "SANDGLASS_DATA" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "soon"], "is not a duration"),
        (["--sandglass-preset", "transformer-tiny"], "is a transformer model, not sandglass"),
        (["--merge", "missing.json"], "no such bench.json"),
        (["--decode-precision", "fp16"], "decode_precision must be one of auto, float32, bfloat16, both"),
    ],
)
def test_bench_mistakes_are_one_line_errors(tmp_path, args, message):
    result = run_cli("bench", *args, "--output", str(tmp_path / "out"))
    assert result.exit_code != 0 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_settings_file_is_layered_under_the_command_line(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text('[bench]\nbudget = "2m"\nbeam = 4\nboth-directions = true\nsrc = "en"\ntgt = "de"\n')
    config = bench_config(read_bench_file(path) | {"beam": 3, "data": tmp_path})
    assert (config.budget, config.beam, config.data_dir) == (120.0, 3, tmp_path)
    assert config.directions == (Direction("en", "de"), Direction("de", "en"))
    with pytest.raises(ConfigError, match="unknown bench setting"):
        bench_config({"beams": 3})


def small_teacher(tmp_path):
    """An untrained Transformer run whose data set is a folder of 40 reversal pairs (its symbols, its task)."""
    teacher = make_run(tmp_path / "teacher")
    splits = DataSplits(*(synthetic_corpus("reverse", 40, seed=name) for name in ("train", "valid", "test")))
    write_splits(splits, tmp_path / "reverse", "de", "en")
    config = RunConfig.load(teacher / CONFIG_FILE)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, dataset=str(tmp_path / "reverse")))
    (teacher / CONFIG_FILE).write_text(config.to_json())
    return teacher


def test_distill_translates_the_training_source_then_trains_the_student(tmp_path):
    teacher = small_teacher(tmp_path)
    output = tmp_path / "student"
    args = ["--teacher", str(teacher), "--beam", "2", "--preset", "tiny", "--budget", "1s", "--threads", "1"]
    result = run_cli("distill", *args, "--device", "cpu", "--output", str(output))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "40 training sentences at beam 2 in" in result.stdout and "finished (max time)" in result.stdout
    assert (output / WEIGHTS_FILE).is_file() and (output / "distilled-data" / "train.en").is_file()
    assert RunConfig.load(output / CONFIG_FILE).train.validate_every == preset("tiny").train.validate_every


def test_distill_validates_the_student_as_often_as_asked(tmp_path):
    teacher = small_teacher(tmp_path)
    output = tmp_path / "student"
    args = ["--teacher", str(teacher), "--preset", "tiny", "--budget", "1s", "--threads", "1", "--validate-every", "7"]
    result = run_cli("distill", *args, "--device", "cpu", "--output", str(output))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert RunConfig.load(output / CONFIG_FILE).train.validate_every == 7


def test_distill_refuses_a_transformer_student(tmp_path):
    result = run_cli("distill", "--teacher", str(tmp_path), "--preset", "transformer-tiny")
    assert result.exit_code == 2 and "choose a SandGlass one" in result.stderr
