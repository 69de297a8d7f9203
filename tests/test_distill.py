"""Sequence-level distillation: the teacher's beam outputs become the training targets of a SandGlass student."""

import dataclasses
import json

import pytest

from sandglass.checkpoint import TOKENIZER_FILE, WEIGHTS_FILE, load_run
from sandglass.config import ConfigError
from sandglass.data.corpus import DataSplits
from sandglass.data.loading import load_splits
from sandglass.data.synthetic import synthetic_corpus
from sandglass.distill import SUMMARY_FILE, distill_corpus, student_config, student_preset
from sandglass.training import train
from sandglass.translator import Translator
from tests.cli.runs import make_run

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def teacher(tmp_path):
    return Translator(load_run(make_run(tmp_path / "teacher")), batch_size=16)


def reverse_splits() -> DataSplits:
    return DataSplits(*(synthetic_corpus("reverse", size, seed=name) for name, size in [("t", 60), ("v", 8), ("x", 8)]))


def test_distilled_targets_are_the_teacher_beam_translations(teacher, tmp_path):
    splits = reverse_splits()
    batches = []
    corpus = distill_corpus(teacher, splits, tmp_path / "distilled", beam_size=3, on_batch=batches.append)
    expected = teacher.translate(splits.train.source, beam_size=3)
    assert corpus.splits.train.source == splits.train.source and corpus.splits.train.target == expected
    assert corpus.splits.valid == splits.valid and corpus.splits.test == splits.test
    assert (corpus.sentences, corpus.beam_size, corpus.teacher) == (60, 3, teacher.run.path)
    assert corpus.seconds > 0 and sum(batches) == 60
    assert (tmp_path / "distilled" / "train.en").read_text(encoding="utf-8").splitlines() == expected
    summary = json.loads((tmp_path / "distilled" / SUMMARY_FILE).read_text())
    assert summary["sentences"] == 60 and summary["beam_size"] == 3 and summary["teacher_seconds"] == corpus.seconds
    reread = load_splits(str(tmp_path / "distilled"), src="de", tgt="en")
    assert reread.test == splits.test and reread.valid == splits.valid


def test_student_trains_on_the_distilled_folder_with_the_teacher_tokenizer(teacher, tmp_path):
    corpus = distill_corpus(teacher, reverse_splits(), tmp_path / "distilled", beam_size=2)
    config = student_config(teacher.run.config, corpus, "tiny", max_time=30.0)
    assert config.model.arch == "sandglass" and config.train.max_time == 30.0
    assert config.data.dataset == str(tmp_path / "distilled") and config.data.data_dir is None
    assert (config.data.src, config.data.tgt) == (teacher.run.config.data.src, teacher.run.config.data.tgt)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=3, device="cpu"))
    result = train(config, tmp_path / "student", tokenizer=teacher.tokenizer)
    assert result.steps == 3 and (tmp_path / "student" / WEIGHTS_FILE).is_file()
    assert (tmp_path / "student" / TOKENIZER_FILE).read_bytes() == teacher.tokenizer.to_bytes()


def test_the_student_must_be_a_sandglass_model():
    assert student_preset("tiny").model.arch == "sandglass"
    with pytest.raises(ConfigError, match="is a transformer model; choose a SandGlass one"):
        student_preset("transformer-tiny")
