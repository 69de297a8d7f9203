import pytest

from sandglass.bench.speed import measure_decoding, training_tokens_per_second
from sandglass.checkpoint import load_run
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


def test_training_speed_is_the_median_window_without_the_first():
    assert training_tokens_per_second([10.0, 100.0, 40.0, 110.0, 120.0]) == 105.0
    assert training_tokens_per_second([10.0, 100.0]) == 55.0
    assert training_tokens_per_second([]) is None
