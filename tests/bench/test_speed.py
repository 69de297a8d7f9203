import pytest

from sandglass.bench.config import BenchConfig
from sandglass.bench.speed import measure_decoding, measure_method, training_tokens_per_second
from sandglass.checkpoint import load_run
from sandglass.data.corpus import ParallelCorpus
from sandglass.metrics import score_corpus
from sandglass.translator import Translator
from tests.cli.runs import make_run

LINES = ["s1 s2 s3", "s4", "s5 s6", "s7 s1 s2 s3 s4", "s2 s2"]


@pytest.mark.parametrize("preset_name", ["transformer-tiny", "tiny"])
def test_decoding_speed_times_every_run_and_returns_the_same_translations(tmp_path, preset_name):
    run = load_run(make_run(tmp_path / "run", preset_name=preset_name))
    speed, translations = measure_decoding(run, LINES, batch_size=2, beam_size=2, runs=3)
    assert (speed.batch_size, speed.sentences, len(speed.runs)) == (2, 5, 3)
    assert all(seconds > 0 for seconds in speed.runs)
    assert speed.sentences_per_second == pytest.approx(5 / sorted(speed.runs)[1])
    assert translations == Translator(run, batch_size=2).translate(LINES, beam_size=2)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_method_is_scored_on_its_batched_translations_in_its_precision(tmp_path, monkeypatch, precision):
    created = []

    class RecordingTranslator(Translator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append((self.batch_size, self.precision))

    monkeypatch.setattr("sandglass.bench.speed.Translator", RecordingTranslator)
    run = load_run(make_run(tmp_path / "run", preset_name="tiny"))
    test = ParallelCorpus(LINES, ["s1 s2", "s4", "s5", "s7 s1", "s2"], name="test")
    config = BenchConfig(batch_size=2, single_sentences=3, speed_runs=2)
    result = measure_method(run, test, "ctc-greedy", beam_size=1, precision=precision, config=config)
    translations = Translator(run, batch_size=2, precision=precision).translate(LINES)
    assert (result.method, result.beam_size, result.precision) == ("ctc-greedy", 1, precision)
    assert result.scores == score_corpus(translations, test.target)
    assert [(speed.batch_size, speed.sentences, len(speed.runs)) for speed in result.speeds] == [(1, 3, 2), (2, 5, 2)]
    assert created == [(1, precision), (2, precision)]


def test_training_speed_is_the_median_window_without_the_first():
    assert training_tokens_per_second([10.0, 100.0, 40.0, 110.0, 120.0]) == 105.0
    assert training_tokens_per_second([10.0, 100.0]) == 55.0
    assert training_tokens_per_second([]) is None
