import os

import pytest
import torch

import sandglass.translator as translator_module
from sandglass.precision import autocast_for
from sandglass.translator import TranslationTiming, Translator
from tests.cli.runs import make_run

MAX_LENGTH = 12


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "transformer", max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def translator(run_dir):
    return Translator.from_checkpoint(run_dir, batch_size=3)


def symbols(*indices: int) -> str:
    return " ".join(f"s{index:02d}" for index in indices)


def record_autocast(seen: list):
    """A stand-in for ``generate`` that records whether each batch runs under CPU autocast and returns nothing."""

    def generate(model, src, src_mask, *, beam_size=1):
        seen.append(torch.is_autocast_enabled("cpu"))
        return [[] for _ in range(src.shape[0])]

    return generate


def echo_sources(calls: list):
    """A stand-in for ``generate`` that records each batch's lengths and returns the source ids unchanged."""

    def generate(model, src, src_mask, *, beam_size=1):
        calls.append(src_mask.sum(dim=1).tolist())
        return [row[mask].tolist() for row, mask in zip(src, src_mask, strict=True)]

    return generate


def test_one_output_line_per_input_line_in_order(translator):
    lines = [symbols(1, 2, 3), "", "   ", symbols(4), "\t", symbols(5, 6, 7, 8, 9), symbols(10, 11)]
    outputs = translator.translate(lines)
    assert len(outputs) == len(lines)
    assert [outputs[i] for i in (1, 2, 4)] == ["", "", ""]
    for line, output in zip(lines, outputs, strict=True):
        if line.strip():
            assert output == translator.translate([line])[0]  # the same alone as sorted into a batch
            assert "\n" not in output


def test_blank_lines_never_reach_the_model(translator, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model ran on a blank line")

    monkeypatch.setattr(translator_module, "generate", fail)
    outputs, timing = translator.translate_timed(["", "  ", "\t \t"])
    assert outputs == ["", "", ""]
    assert (timing.sentences, timing.source_tokens, timing.truncated) == (0, 0, 0)
    assert translator.translate([]) == []


def test_sentences_are_sorted_by_length_into_batches_and_put_back_in_order(translator, monkeypatch):
    calls = []
    monkeypatch.setattr(translator_module, "generate", echo_sources(calls))
    lines = [symbols(*range(length)) if length else "" for length in (5, 1, 3, 0, 2, 4, 6)]
    outputs, timing = translator.translate_timed(lines)
    assert outputs == lines
    assert calls == [[1, 2, 3], [4, 5, 6]]
    assert (timing.sentences, timing.source_tokens, timing.truncated) == (6, 21, 0)


def test_progress_callback_counts_every_sentence(translator, monkeypatch):
    monkeypatch.setattr(translator_module, "generate", echo_sources([]))
    counts = []
    translator.translate([symbols(1)] * 7 + [""], on_batch=counts.append)
    assert counts == [3, 3, 1]


def test_over_long_line_is_truncated_to_the_source_limit(translator, monkeypatch):
    long_line = symbols(*range(MAX_LENGTH + 9))
    outputs, timing = translator.translate_timed([long_line, symbols(1)])  # the real model must not crash
    assert len(outputs) == 2 and timing.truncated == 1 and translator.max_source_tokens == MAX_LENGTH
    monkeypatch.setattr(translator_module, "generate", echo_sources([]))
    outputs, timing = translator.translate_timed([long_line])
    assert outputs == [symbols(*range(MAX_LENGTH))]
    assert timing.truncated == 1 and timing.source_tokens == MAX_LENGTH


def test_beam_search_gives_one_line_per_input(translator):
    lines = [symbols(3, 1, 4), "", symbols(1, 5)]
    outputs = translator.translate(lines, beam_size=2)
    assert len(outputs) == 3 and outputs[1] == ""


@pytest.mark.parametrize(("preset_name", "settings", "limit"), [("tiny", {"max_length": 16}, 16), ("original", {}, 24)])
def test_every_architecture_translates_and_truncates(tmp_path, preset_name, settings, limit):
    translator = Translator.from_checkpoint(make_run(tmp_path / preset_name, preset_name=preset_name, **settings))
    lines = [symbols(1, 2, 3), "", symbols(*range(limit + 5))]
    outputs, timing = translator.translate_timed(lines, beam_size=2 if preset_name == "tiny" else 1)
    assert len(outputs) == 3 and outputs[1] == "" and all(isinstance(text, str) for text in outputs)
    assert translator.max_source_tokens == limit and timing.truncated == 1


def test_without_a_path_the_newest_run_is_loaded(tmp_path):
    older, newer = make_run(tmp_path / "older"), make_run(tmp_path / "newer", seed=1)
    os.utime(older / "model.safetensors", (1_000_000, 1_000_000))
    assert Translator.from_checkpoint(None, root=tmp_path).run.path == newer


def test_timing_reports_milliseconds():
    timing = TranslationTiming(seconds=0.25, sentences=2, source_tokens=7, truncated=0)
    assert timing.milliseconds == pytest.approx(250.0)


def test_invalid_settings_raise_value_errors(run_dir, translator):
    with pytest.raises(ValueError, match="batch_size"):
        Translator(translator.run, batch_size=0)
    with pytest.raises(ValueError, match="beam_size"):
        translator.translate([symbols(1)], beam_size=0)
    with pytest.raises(ValueError, match="device"):
        Translator(translator.run, device="nonsense")
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        Translator(translator.run, precision="float16")


def test_model_is_in_eval_mode_on_the_chosen_device(translator):
    assert not translator.model.training
    assert next(translator.model.parameters()).device == torch.device("cpu")


@pytest.mark.parametrize(("precision", "autocast"), [("float32", False), ("bfloat16", True)])
def test_the_model_runs_under_bf16_autocast_only_when_asked(translator, monkeypatch, precision, autocast):
    seen = []
    monkeypatch.setattr(translator_module, "generate", record_autocast(seen))
    chosen = Translator(translator.run, precision=precision)
    assert chosen.precision == precision
    chosen.translate([symbols(1, 2), symbols(3)])
    assert seen == [autocast]


def test_one_autocast_context_covers_every_batch_of_a_call(translator, monkeypatch):
    # autocast casts each weight once per context, so a context per batch would cast them again every batch.
    entered, seen = [], []

    def counting_autocast(device, precision):
        entered.append(precision)
        return autocast_for(device, precision)

    monkeypatch.setattr(translator_module, "autocast_for", counting_autocast)
    monkeypatch.setattr(translator_module, "generate", record_autocast(seen))
    Translator(translator.run, batch_size=1, precision="bfloat16").translate([symbols(1), symbols(2, 3), symbols(4)])
    assert seen == [True, True, True]
    assert entered == ["bfloat16"]


def test_auto_precision_follows_the_hardware(translator, monkeypatch):
    monkeypatch.setattr(translator_module, "uses_bfloat16", lambda device, precision: precision != "float32")
    assert Translator(translator.run, precision="auto").precision == "bfloat16"
    monkeypatch.setattr(translator_module, "uses_bfloat16", lambda device, precision: precision == "bfloat16")
    assert Translator(translator.run, precision="auto").precision == "float32"
