"""A whole bench on a tiny Multi30k-layout folder: tiny presets, two seconds per model, with distillation."""

import dataclasses
import gzip
import json

import pytest

from sandglass.bench import BenchResult, Direction, run_bench, write_report
from sandglass.bench.events import BenchCallbacks
from sandglass.checkpoint import CONFIG_FILE, TOKENIZER_FILE, CheckpointError
from sandglass.config import RunConfig
from sandglass.training import TrainingCallbacks
from tests.bench.corpus import SPLIT_SIZES, tiny_bench_config, write_tiny_multi30k

PRECISIONS = ("float32", "bfloat16")
MODEL_METHODS = {
    "transformer": ["greedy", "beam2"],
    "sandglass": ["ctc-greedy", "ctc-beam2"],
    "sandglass-distilled": ["ctc-greedy", "ctc-beam2"],
}


class Recorder(BenchCallbacks):
    def __init__(self):
        self.stages, self.measured, self.trained, self.translated = [], [], TrainingCallbacks(), 0
        self.training_events = []
        recorder = self

        class Training(TrainingCallbacks):
            def validated(self, event):
                recorder.training_events.append(event)

        self.training = Training()
        self.output_dir = None
        self.models_on_file = []

    def stage_started(self, event):
        self.stages.append((event.model, event.stage))
        if event.stage == "train":
            self.models_on_file.append(models_in_report(self.output_dir))

    def training_callbacks(self):
        return self.training

    def teacher_progress(self, sentences):
        self.translated += sentences

    def decoding_measured(self, event):
        self.measured.append((event.model, event.method, event.precision))


def models_in_report(folder):
    """The models in the bench.json written so far, or None when there is none yet."""
    path = folder / "bench.json"
    if not path.is_file():
        return None
    return [model.name for direction in BenchResult.load(path).directions for model in direction.models]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data_dir = write_tiny_multi30k(root / "multi30k")
    config = tiny_bench_config(data_dir, root / "out", distill=True, decode_precision="both")
    recorder = Recorder()
    recorder.output_dir = config.output_dir
    result = run_bench(config, command="sandglass bench (test)", callbacks=recorder)
    on_file_at_the_end = BenchResult.load(config.output_dir / "bench.json")
    return config, result, write_report(result, config.output_dir), recorder, on_file_at_the_end


def test_bench_json_has_every_field(bench):
    config, _, files, _, _ = bench
    raw = json.loads(files.json.read_text(encoding="utf-8"))
    assert set(raw) == {"date", "command", "budget_seconds", "machine", "settings", "directions", "version"}
    assert raw["budget_seconds"] == config.budget and raw["command"] == "sandglass bench (test)"
    assert set(raw["machine"]) == {
        "cpu_count",
        "usable_cpus",
        "processor",
        "platform",
        "python",
        "torch",
        "threads",
        "device",
        "precision",
    }
    assert raw["machine"]["threads"] == 1 and raw["machine"]["torch"].startswith("2.")
    assert raw["machine"]["precision"] in ("float32", "bfloat16")
    assert raw["settings"]["single_sentences"] == 4 and raw["settings"]["directions"] == [{"src": "de", "tgt": "en"}]
    (direction,) = raw["directions"]
    assert (direction["src"], direction["tgt"], direction["test_set"]) == ("de", "en", "test_2016_flickr")
    assert direction["test_sentences"] == SPLIT_SIZES["test_2016_flickr"]
    assert direction["train_pairs"] == SPLIT_SIZES["train"] and direction["vocab_size"] > 10
    assert [model["name"] for model in direction["models"]] == list(MODEL_METHODS)
    for model in direction["models"]:
        assert_model_fields(model, config)
    models_and_precisions = [(c["model"], c["precision"]) for c in direction["comparisons"]]
    assert models_and_precisions == [(m, p) for p in PRECISIONS for m in ("sandglass", "sandglass-distilled")]
    for comparison in direction["comparisons"]:
        assert comparison["versus"] == "transformer"
        for name in ("greedy_speedup_batch_1", "greedy_speedup_batch_large", "training_speed_ratio"):
            assert comparison[name] > 0, name
        assert comparison["parameter_ratio"] > 0 and isinstance(comparison["bleu_difference"], float)


def assert_model_fields(model, config):
    assert set(model) == {"name", "preset", "run_dir", "parameters", "training", "decoding", "teacher"}
    assert model["parameters"] > 1000
    training = model["training"]
    assert config.budget <= training["seconds"] < config.budget + 30
    assert training["stopped_because"] == "max_time" and training["steps"] > 0
    assert training["target_tokens_per_second"] > 0 and training["peak_rss_mib"] > 50
    assert training["best_valid_bleu"] == max(point["bleu"] for point in training["curve"])
    seconds = [point["seconds"] for point in training["curve"]]
    assert seconds == sorted(seconds) and seconds[-1] >= config.budget
    methods = [(d["method"], d["precision"]) for d in model["decoding"]]
    assert methods == [(method, p) for p in PRECISIONS for method in MODEL_METHODS[model["name"]]]
    for decoding in model["decoding"]:
        scores = decoding["scores"]
        assert 0 <= scores["bleu"] <= 100 and 0 <= scores["chrf"] <= 100 and "bleu_lowercase" in scores
        assert "tok:13a" in scores["bleu_signature"] and "case:lc" in scores["bleu_lowercase_signature"]
        assert "nc:6" in scores["chrf_signature"]
        speeds = decoding["speeds"]
        assert [(s["batch_size"], s["sentences"]) for s in speeds] == [(1, 4), (8, SPLIT_SIZES["test_2016_flickr"])]
        for speed in speeds:
            assert len(speed["runs"]) == config.speed_runs and speed["sentences_per_second"] > 0
    if model["name"] == "sandglass-distilled":
        assert model["teacher"]["sentences"] == SPLIT_SIZES["train"] and model["teacher"]["beam_size"] == 2
        assert model["teacher"]["seconds"] > 0 and model["teacher"]["run_dir"].endswith("transformer")
    else:
        assert model["teacher"] is None


def test_result_reads_back_as_written(bench):
    _, result, files, _, _ = bench
    assert BenchResult.load(files.json) == result


def test_table_and_plot_are_written(bench):
    _, _, files, _, _ = bench
    table = files.table.read_text(encoding="utf-8")
    expected = ["## de → en", "test_2016_flickr", "| transformer | transformer-tiny |", "| ctc-beam2 |"]
    for text in [*expected, "| ctc-beam2 bf16 |", "Signatures"]:
        assert text in table, text
    assert "teacher" in table and "sent/s b8" in table
    assert files.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_model_uses_the_one_tokenizer_and_the_distilled_one_the_teacher_outputs(bench):
    config, _, _, _, _ = bench
    folder = config.output_dir / "de-en"
    shared = (folder / TOKENIZER_FILE).read_bytes()
    for model in MODEL_METHODS:
        assert (folder / model / TOKENIZER_FILE).read_bytes() == shared, model
    distilled = RunConfig.load(folder / "sandglass-distilled" / CONFIG_FILE)
    assert distilled.data.dataset == str(folder / "distilled-data")
    with gzip.open(config.data_dir / "train.de.gz", "rt", encoding="utf-8") as handle:
        assert (folder / "distilled-data" / "train.de").read_text(encoding="utf-8") == handle.read()
    assert len((folder / "distilled-data" / "train.en").read_text(encoding="utf-8").splitlines()) == 300


def test_progress_reaches_the_callbacks(bench):
    _, _, _, recorder, _ = bench
    assert recorder.stages[:2] == [("transformer", "train"), ("transformer", "evaluate")]
    assert ("sandglass-distilled", "distill") in recorder.stages
    assert recorder.measured == [
        (model, method, precision)
        for model, methods in MODEL_METHODS.items()
        for precision in PRECISIONS
        for method in methods
    ]
    assert recorder.translated == SPLIT_SIZES["train"] and recorder.training_events


def test_the_report_is_rewritten_after_each_model(bench):
    _, result, _, recorder, on_file_at_the_end = bench
    # Read when each training starts: nothing before the first, then every model finished so far.
    assert recorder.models_on_file == [None, ["transformer"], ["transformer", "sandglass"]]
    assert on_file_at_the_end == result


def test_a_second_bench_into_the_same_folder_is_refused(bench):
    config, _, _, _, _ = bench
    with pytest.raises(CheckpointError, match="holds an earlier bench's figures; choose another --output"):
        run_bench(config)
    other_direction = dataclasses.replace(config, directions=(Direction("en", "de"),))
    with pytest.raises(CheckpointError, match="bench.json holds an earlier bench's figures"):
        run_bench(other_direction)


def test_runs_of_an_earlier_bench_are_never_trained_over(tmp_path):
    config = tiny_bench_config(tmp_path / "multi30k", tmp_path / "out")
    (config.output_dir / "de-en" / "transformer").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="already holds a bench's runs; choose another --output"):
        run_bench(config)
