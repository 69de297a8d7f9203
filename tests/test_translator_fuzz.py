"""Fuzzing tokenize → translate → detokenize with hostile Unicode.

A *line* is one element of the list given to :meth:`Translator.translate`; in a file or on standard input it
is the text between two ``\\n`` (a ``\\r`` before the ``\\n`` is dropped, see ``split_lines``). Every other
character, ``\\r``, U+2028, U+2029, U+0085, NUL and the rest, belongs to the line. Whatever the line holds,
translate returns exactly one output per line, and no output holds a character that ``str.splitlines`` would
split on, so the output has one line per input line however it is read back.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandglass.checkpoint import WEIGHTS_FILE, save_weights, write_run_files
from sandglass.config import RunConfig, preset
from sandglass.data.readers import split_lines
from sandglass.models.build import build_model
from sandglass.tokenizer import Tokenizer
from sandglass.translator import Translator

MAX_LENGTH = 16
LONG_TOKEN = 10_000
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
TRAINING_TEXT = [
    "A man rides a bike down the street.",
    "Ein Mann fährt mit dem Fahrrad die Straße hinunter.",
    "Deux enfants jouent dans le parc, près du café.",
    "שני ילדים משחקים בפארק",
    "طفلان يلعبان في الحديقة",
    "二人の子供が公園で遊んでいる。",
    "Дети играют в парке.",
    "😀 👍🏽 🇩🇪 👨‍👩‍👧",
    "naïve cafe\u0301 re\u0301sume\u0301",
]

CONTROL = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(["\x7f", "\x85", "\x9b", "\x00"])
LINE_BREAKS = st.sampled_from(["\n", "\r", "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1e", "\x85"])
RIGHT_TO_LEFT = st.sampled_from(["שלום", "مرحبا", "\u200f", "\u202e", "\u202b", "\u2067", "\u061c"]) | st.characters(
    min_codepoint=0x0590, max_codepoint=0x06FF
)
EMOJI = st.sampled_from(["😀", "👍🏽", "🇩🇪", "👨‍👩‍👧", "\u2764\ufe0f", "\U0001f3f4\U000e0067\U000e0062\U000e007f"])
COMBINING = st.characters(min_codepoint=0x0300, max_codepoint=0x036F) | st.sampled_from(["\u20dd", "\u0e49", "\u200d"])
LONE_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)  # what undecodable bytes become
LONG = st.builds(lambda chunk: (chunk * LONG_TOKEN)[:LONG_TOKEN], st.text(min_size=1, max_size=5))
FRAGMENT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(TRAINING_TEXT),
    CONTROL,
    LINE_BREAKS,
    RIGHT_TO_LEFT,
    EMOJI,
    COMBINING.map(lambda mark: "e" + mark * 5),
    COMBINING,
    LONE_SURROGATE,
    st.just(" "),
)
LINE = st.lists(FRAGMENT, max_size=8).map("".join) | LONG | st.sampled_from(["", " ", "\t", "\x00", "\u3000"])
LINES = st.lists(LINE, min_size=1, max_size=6)


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TRAINING_TEXT * 4, vocab_size=120)


@pytest.fixture(scope="module", params=["transformer-tiny", "tiny"])
def translator(request, tmp_path_factory, tokenizer) -> Translator:
    """An untrained model of the preset behind a real run folder (what comes out does not matter here)."""
    run_dir = tmp_path_factory.mktemp(request.param)
    model_config = preset(request.param).model
    model_config.max_length = MAX_LENGTH
    config = RunConfig(model=model_config)
    torch.manual_seed(0)
    write_run_files(run_dir, config, tokenizer)
    save_weights(build_model(config.model, tokenizer.vocab_size), run_dir / WEIGHTS_FILE)
    return Translator.from_checkpoint(run_dir, device="cpu", batch_size=4)


def assert_one_line_each(lines: list[str], outputs: list[str]) -> None:
    assert len(outputs) == len(lines)
    for line, output in zip(lines, outputs, strict=True):
        assert isinstance(output, str) and output.splitlines() in ([], [output])
        if not line.strip():
            assert output == ""


@FUZZ
@given(lines=LINES)
def test_tokenize_then_detokenize_never_raises(tokenizer, lines):
    """Fault: random Unicode through the tokenizer alone."""
    ids = tokenizer.encode(lines)
    assert len(ids) == len(lines)
    assert all(0 <= i < tokenizer.vocab_size for row in ids for i in row)
    assert len(tokenizer.decode(ids)) == len(lines)


@FUZZ
@given(lines=LINES, beam=st.sampled_from([1, 2]))
def test_translate_gives_one_line_per_input_line(translator, lines, beam):
    """Fault: random Unicode (controls, RTL, emoji, combining marks, NUL, a 10,000-character token) to translate."""
    outputs, timing = translator.translate_timed(lines, beam_size=beam)
    assert_one_line_each(lines, outputs)
    assert timing.sentences <= len(lines)


@FUZZ
@given(text=st.lists(LINE, max_size=6).map("\n".join))
def test_a_text_keeps_its_line_count_through_translation(translator, text):
    """Fault: embedded \\r, U+2028 and other separators in a file: lines are split on \\n only, on both sides."""
    lines = split_lines(text)
    written = "".join(output + "\n" for output in translator.translate(lines))
    assert written.count("\n") == len(lines) == len(written.splitlines())


def test_a_10000_character_token_is_truncated_to_the_source_limit(translator):
    """Fault: a line far longer than the model's limit is truncated, as documented, not a crash."""
    outputs, timing = translator.translate_timed(["x" * LONG_TOKEN, "a b", "\x00" * LONG_TOKEN])
    assert len(outputs) == 3 and timing.truncated >= 1
