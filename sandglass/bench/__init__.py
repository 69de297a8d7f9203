"""The Multi30k benchmark: SandGlass against the Transformer reference, same data, tokenizer and time budget."""

from sandglass.bench.config import BenchConfig, Direction
from sandglass.bench.events import BenchCallbacks, DecodingMeasured, StageStarted
from sandglass.bench.report import ReportFiles, merge_results, write_report
from sandglass.bench.results import BenchResult
from sandglass.bench.run import run_bench

__all__ = [
    "BenchCallbacks",
    "BenchConfig",
    "BenchResult",
    "DecodingMeasured",
    "Direction",
    "ReportFiles",
    "StageStarted",
    "merge_results",
    "run_bench",
    "write_report",
]
