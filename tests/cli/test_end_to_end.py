"""Train, translate and evaluate through the command line on a short reverse task, on the CPU."""

import json
from pathlib import Path

from sandglass.data.synthetic import synthetic_corpus
from tests.cli.runs import run_cli

SPLIT_SIZES = {"train": 2000, "valid": 200, "test": 200}
LETTERS = "abcdefgh"  # one sentencepiece piece each (the synthetic names s0..s7 split into two)


def as_letters(symbols: str) -> str:
    return " ".join(LETTERS[int(symbol[1:])] for symbol in symbols.split())


def write_short_reverse_task(folder: Path) -> None:
    """Reverse 1 to 5 letters of 8 as a folder data set: ``train.tsv``, ``valid.tsv``, ``test.tsv``."""
    folder.mkdir()
    for split, size in SPLIT_SIZES.items():
        corpus = synthetic_corpus("reverse", size, vocab_size=len(LETTERS), max_length=5, seed=f"{split}:cli")
        text = "".join(f"{as_letters(source)}\t{as_letters(target)}\n" for source, target in corpus.pairs())
        (folder / f"{split}.tsv").write_text(text, encoding="utf-8")


def test_train_then_translate_then_eval_reverses_sequences(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_short_reverse_task(tmp_path / "short-reverse")
    settings = "--preset tiny --dataset short-reverse --vocab-size 30 --max-steps 400 --validate-every 400"
    trained = run_cli("train", *settings.split(), "--device", "cpu", "--run-dir", "run")
    assert trained.exit_code == 0, trained.stdout + trained.stderr
    assert "valid  step" in trained.stdout and "checkpoints go to run" in trained.stdout

    sentences = ["b c d", "", "h a a e", "f"]
    translated = run_cli("translate", "-", "--checkpoint", "run", input="\n".join(sentences) + "\n")
    assert translated.exit_code == 0, translated.stderr
    outputs = translated.stdout.split("\n")[:-1]
    assert len(outputs) == 4 and outputs[1] == ""
    assert sum(out == " ".join(reversed(line.split())) for line, out in zip(sentences, outputs, strict=True)) >= 2

    evaluated = run_cli("eval", "--checkpoint", "run", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["sentences"] == SPLIT_SIZES["test"]
    assert scores["exact_match"] >= 95.0, scores
