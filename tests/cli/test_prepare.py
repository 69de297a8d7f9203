from tests.cli.runs import run_cli


def split_pairs(output: str) -> dict[str, str]:
    """The ``pairs`` cell of each split row of the printed table."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]
    return {row[0]: row[1] for row in rows if row[0] in ("train", "valid", "test")}


def test_prepare_reports_split_sizes_and_caches_the_tokenizer(tmp_path):
    cache = tmp_path / "cache"
    result = run_cli("prepare", "--dataset", "reverse", "--vocab-size", "100", "--data-cache", str(cache))
    assert result.exit_code == 0, result.stderr
    assert split_pairs(result.stdout) == {"train": "10,000", "valid": "500", "test": "500"}
    assert "reverse: synthetic (translate)" in result.stdout and "→" not in result.stdout
    assert "vocabulary: 64 pieces" in result.stdout  # 60 symbols and the 4 special pieces
    assert len(list(cache.glob("tokenizer-*.model"))) == 1
    again = run_cli("prepare", "--dataset", "reverse", "--vocab-size", "100", "--data-cache", str(cache))
    assert again.stdout == result.stdout and len(list(cache.glob("tokenizer-*.model"))) == 1


def test_prepare_reconstruct_task_of_a_file_pair(tmp_path):
    source, target = tmp_path / "a.de", tmp_path / "a.en"
    source.write_text("".join(f"Satz Nummer {i}.\n" for i in range(40)), encoding="utf-8")
    target.write_text("".join(f"Sentence number {i}.\n" for i in range(40)), encoding="utf-8")
    result = run_cli(
        "prepare",
        "--dataset",
        f"{source},{target}",
        "--task",
        "reconstruct",
        "--vocab-size",
        "40",
        "--data-cache",
        str(tmp_path / "cache"),
    )
    assert result.exit_code == 0, result.stderr
    assert "de → en (reconstruct)" in result.stdout
    assert split_pairs(result.stdout) == {"train": "36", "valid": "4"}  # a tenth held out for validation
