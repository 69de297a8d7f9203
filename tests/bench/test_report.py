import json

import pytest

from sandglass.bench import BenchResult, merge_results, write_report
from sandglass.bench.report import markdown_table
from tests.bench.results import made_up_result


def test_report_writes_json_table_and_plot_that_read_back(tmp_path):
    result = made_up_result(("de", "en"), ("en", "de"))
    files = write_report(result, tmp_path / "out")
    assert BenchResult.load(files.json) == result
    assert json.loads(files.json.read_text())["directions"][1]["src"] == "en"
    table = files.table.read_text(encoding="utf-8")
    assert "## de → en" in table and "## en → de" in table
    assert files.plot.read_bytes()[:4] == b"\x89PNG"


def test_table_rows_show_every_figure_and_a_dash_for_what_was_not_measured():
    lines = markdown_table(made_up_result(("de", "en"))).splitlines()
    (row,) = [index for index, line in enumerate(lines) if line.startswith("| transformer |")]
    cells, bf16_cells = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines[row : row + 2])
    assert cells[:8] == ["transformer", "base", "0.00M", "1m00s", "100", "1,000", "—", "greedy"]
    assert cells[11:] == ["8.0", "50.0"]
    assert bf16_cells[:8] == ["", "", "", "", "", "", "", "greedy bf16"] and bf16_cells[11:] == ["16.0", "100.0"]
    comparison_rows = [line for line in lines if line.startswith(("| sandglass | float32", "| sandglass | bfloat16"))]
    assert comparison_rows == [
        "| sandglass | float32 | 10.0× | 5.0× | — | 1.50× | -2.00 |",
        "| sandglass | bfloat16 | 12.0× | 6.0× | — | 1.50× | -2.50 |",
    ]


def test_a_result_written_before_bf16_decoding_reads_as_float32():
    raw = json.loads(made_up_result(("de", "en")).to_json())
    for direction in raw["directions"]:
        for comparison in direction["comparisons"]:
            del comparison["precision"]
        for model in direction["models"]:
            for decoding in model["decoding"]:
                del decoding["precision"]
    (direction,) = BenchResult.from_dict(raw).directions
    assert {c.precision for c in direction.comparisons} == {"float32"}
    assert all(d.precision == "float32" for model in direction.models for d in model.decoding)


def test_merge_joins_directions_and_keeps_the_latest_date():
    first = made_up_result(("de", "en"), date="2026-01-01T00:00:00")
    second = made_up_result(("en", "de"), date="2026-02-01T00:00:00")
    merged = merge_results([first, second])
    assert [(d.src, d.tgt) for d in merged.directions] == [("de", "en"), ("en", "de")]
    assert merged.date == second.date and first.command in merged.command and second.command in merged.command


def test_merge_refuses_a_repeated_direction_or_different_budgets():
    with pytest.raises(ValueError, match="de-en is in more than one"):
        merge_results([made_up_result(("de", "en")), made_up_result(("de", "en"))])
    with pytest.raises(ValueError, match="different budgets"):
        merge_results([made_up_result(("de", "en")), made_up_result(("en", "de"), budget=30.0)])
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_results([])


def test_reading_a_result_of_another_version_fails():
    raw = json.loads(made_up_result(("de", "en")).to_json()) | {"version": 99}
    with pytest.raises(ValueError, match="version 99"):
        BenchResult.from_dict(raw)
