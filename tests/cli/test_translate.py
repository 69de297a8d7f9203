import json

import pytest

from tests.cli.runs import make_run, run_cli

MAX_LENGTH = 12


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "reverse", max_length=MAX_LENGTH)


def symbols(*indices: int) -> str:
    return " ".join(f"s{index:02d}" for index in indices)


LINES = [symbols(1, 2, 3), "", "   ", symbols(*range(MAX_LENGTH + 8)), "\t", symbols(7), symbols(9, 8)]


def test_translate_file_keeps_line_count_and_order(run_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    result = run_cli("translate", str(source), "--checkpoint", str(run_dir), "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    outputs = result.stdout.split("\n")
    assert outputs[-1] == "" and len(outputs[:-1]) == len(LINES)  # one line each, newline-terminated
    assert [outputs[i] for i in (1, 2, 4)] == ["", "", ""]
    alone = run_cli("translate", "-", "--checkpoint", str(run_dir), input=LINES[5] + "\n")
    assert alone.stdout == outputs[5] + "\n"  # stdin works, and the order was kept
    assert "truncated" in result.stderr and "translated 4 sentence(s)" in result.stderr


def test_translate_to_output_file_with_beam(run_dir, tmp_path):
    target = tmp_path / "out.txt"
    text = "\r\n".join(LINES)  # Windows line ends and no final newline
    result = run_cli("translate", "-", "-c", str(run_dir), "--beam", "2", "--output", str(target), input=text)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert len(target.read_text(encoding="utf-8").split("\n")) == len(LINES) + 1


def test_translate_uses_the_newest_run_by_default(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "checkpoints" / "only", max_length=MAX_LENGTH)
    result = run_cli("translate", "-", input=symbols(4, 5) + "\n")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split("\n")) == 2


def test_eval_json_has_scores_and_signatures(run_dir, tmp_path):
    sources, references = tmp_path / "src.txt", tmp_path / "ref.txt"
    sources.write_text(f"{symbols(1, 2)}\n{symbols(3)}\n", encoding="utf-8")
    references.write_text(f"{symbols(2, 1)}\n{symbols(3)}\n", encoding="utf-8")
    result = run_cli("eval", "-c", str(run_dir), "--src-file", str(sources), "--ref-file", str(references), "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["sentences"] == 2 and scores["beam"] == 1 and scores["precision"] == "float32"
    for name in ("bleu", "bleu_lowercase", "chrf", "ter", "exact_match", "seconds"):
        assert isinstance(scores[name], float)
    assert 0 <= scores["exact_match"] <= 100
    assert scores["signatures"]["bleu"].startswith("nrefs:1|") and "nc:6" in scores["signatures"]["chrf"]
    assert set(scores["signatures"]) == {"bleu", "bleu_lowercase", "chrf", "ter"}


def test_eval_of_the_runs_own_split_prints_a_table(run_dir, tmp_path):
    hypotheses = tmp_path / "hyp.txt"
    result = run_cli("eval", "-c", str(run_dir), "--split", "valid", "--output", str(hypotheses))
    assert result.exit_code == 0, result.stderr
    for name in ("BLEU", "chrF", "TER", "exact match", "nrefs:1", "beam 1, float32"):
        assert name in result.stdout
    assert len(hypotheses.read_text(encoding="utf-8").splitlines()) == 500  # the synthetic validation split


def test_translate_and_eval_in_bfloat16(run_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    result = run_cli("translate", str(source), "-c", str(run_dir), "--precision", "bfloat16")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split("\n")) == len(LINES) + 1
    scores = run_cli(
        "eval",
        "-c",
        str(run_dir),
        "--src-file",
        str(source),
        "--ref-file",
        str(source),
        "--json",
        "--precision",
        "bfloat16",
    )
    assert scores.exit_code == 0, scores.stderr
    assert json.loads(scores.stdout)["precision"] == "bfloat16"
