"""A small Multi30k-layout folder for the bench and distillation tests: word-for-word German-English pairs."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from sandglass.bench.config import BenchConfig, Direction

LEXICON = {
    "ein": "a",
    "hund": "dog",
    "mann": "man",
    "frau": "woman",
    "kind": "child",
    "läuft": "runs",
    "springt": "jumps",
    "sitzt": "sits",
    "rot": "red",
    "blau": "blue",
    "klein": "small",
    "groß": "big",
    "im": "in the",
    "park": "park",
    "wasser": "water",
    "schnee": "snow",
}
SPLIT_SIZES = {"train": 300, "val": 30, "test_2016_flickr": 30}


def write_tiny_multi30k(folder: Path, *, seed: int = 0) -> Path:
    """``train``, ``val`` and ``test_2016_flickr`` ``.de``/``.en`` files (train gzipped, like the real layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = sorted(LEXICON)
    generator = random.Random(seed)
    for split, size in SPLIT_SIZES.items():
        german = [" ".join(generator.choices(words, k=generator.randint(2, 5))) for _ in range(size)]
        english = [" ".join(LEXICON[word] for word in sentence.split()) for sentence in german]
        for language, lines in (("de", german), ("en", english)):
            text = "".join(line + "\n" for line in lines)
            if split == "train":
                with gzip.open(folder / f"{split}.{language}.gz", "wt", encoding="utf-8") as handle:
                    handle.write(text)
            else:
                (folder / f"{split}.{language}").write_text(text, encoding="utf-8")
    return folder


def tiny_bench_config(data_dir: Path, output_dir: Path, **settings) -> BenchConfig:
    """A bench of the tiny presets for a few seconds each, timed on few sentences."""
    values = dict(
        data_dir=data_dir,
        directions=(Direction("de", "en"),),
        budget=1.0,
        sandglass_preset="tiny",
        transformer_preset="transformer-tiny",
        beam=2,
        ctc_beam=2,
        threads=1,
        vocab_size=40,
        batch_size=8,
        single_sentences=4,
        speed_runs=2,
        validate_every=20,
        log_every=5,
        output_dir=output_dir,
        data_cache=output_dir / "tokenizers",
    )
    values.update(settings)
    return BenchConfig(**values)
