"""Sequence-level knowledge distillation: a teacher's translations of the training source become the targets a
SandGlass student learns from (Kim & Rush, 2016).

:func:`distill_corpus` translates the training source with a trained run (beam search) and writes the distilled
data set as a Multi30k-layout folder: ``train.{src}`` (the source as it was) and ``train.{tgt}`` (the teacher's
outputs), with ``val`` and ``test_2016_flickr`` copied unchanged, so validation and test scores stay against the
human references. :func:`student_config` makes the student's run configuration, whose data set is that folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandglass.checkpoint import atomic_write
from sandglass.config import ConfigError, Preset, RunConfig, preset
from sandglass.data.corpus import DataSplits, ParallelCorpus
from sandglass.translator import Translator

SPLIT_FILES = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
SUMMARY_FILE = "distill.json"
DISTILLED_DATA = "distilled-data"  # the corpus folder's name inside a student run or a bench direction


@dataclass(frozen=True)
class DistilledCorpus:
    """The distilled splits, the folder they were written to, and what the teacher's translation cost:
    ``seconds`` of wall clock (model load excluded) for ``sentences`` training sources at ``beam_size``."""

    splits: DataSplits
    folder: Path
    teacher: Path
    beam_size: int
    sentences: int
    seconds: float


def distill_corpus(
    teacher: Translator,
    splits: DataSplits,
    folder: Path,
    *,
    beam_size: int = 5,
    on_batch: Callable[[int], None] | None = None,
) -> DistilledCorpus:
    """Translate ``splits.train.source`` with ``teacher`` and write the distilled data set into ``folder``.

    ``on_batch(n)`` is called after each batch of ``n`` translated sentences. Pairs whose translation is empty
    stay in the folder; training drops them (a target needs at least one token).
    """
    translations, timing = teacher.translate_timed(splits.train.source, beam_size=beam_size, on_batch=on_batch)
    train = ParallelCorpus(list(splits.train.source), translations, f"{splits.train.name} distilled")
    distilled = DataSplits(train, splits.valid, splits.test)
    data = teacher.run.config.data
    write_splits(distilled, Path(folder), data.src, data.tgt)
    corpus = DistilledCorpus(distilled, Path(folder), teacher.run.path, beam_size, len(translations), timing.seconds)
    summary = {
        "teacher": str(corpus.teacher),
        "beam_size": beam_size,
        "sentences": corpus.sentences,
        "teacher_seconds": corpus.seconds,
    }
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(Path(folder) / SUMMARY_FILE, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    return corpus


def write_splits(splits: DataSplits, folder: Path, src: str, tgt: str) -> None:
    """Each split as the line-aligned text files ``{name}.{src}`` and ``{name}.{tgt}`` (UTF-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, name in SPLIT_FILES.items():
        corpus = getattr(splits, role)
        if corpus is None:
            continue
        for language, lines in ((src, corpus.source), (tgt, corpus.target)):
            text = "".join(" ".join(line.splitlines()) + "\n" for line in lines)
            atomic_write(folder / f"{name}.{language}", lambda temporary, t=text: temporary.write_text(t, "utf-8"))


def student_preset(name: str) -> Preset:
    """The named preset, which must be a SandGlass model (ConfigError otherwise)."""
    chosen = preset(name)
    if chosen.model.arch != "sandglass":
        raise ConfigError(f"the student preset {name!r} is a {chosen.model.arch} model; choose a SandGlass one")
    return chosen


def student_config(
    teacher: RunConfig, corpus: DistilledCorpus, preset_name: str = "base", *, max_time: float | None = None
) -> RunConfig:
    """The student's run: the preset's model and training settings on the distilled folder, in the teacher's
    direction and vocabulary size, stopping after ``max_time`` seconds when given."""
    chosen = student_preset(preset_name)
    train = chosen.train if max_time is None else dataclasses.replace(chosen.train, max_time=max_time)
    data = dataclasses.replace(teacher.data, dataset=str(corpus.folder), data_dir=None)
    return RunConfig(model=chosen.model, data=data, train=train)
