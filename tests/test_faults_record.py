"""tests/FAULTS.md names only tests that exist, and every fault in it has at least one."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_fault_names_tests_that_exist():
    record = (ROOT / "tests" / "FAULTS.md").read_text(encoding="utf-8")
    rows = [line for line in record.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    assert len(rows) >= 25
    defined: dict[str, set[str]] = {}
    for row in rows:
        references = TEST_REFERENCE.findall(row)
        assert references, f"no test for: {row[:80]}"
        for path, name in references:
            if path not in defined:
                tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
                defined[path] = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert name in defined[path], f"{path}::{name} does not exist"
