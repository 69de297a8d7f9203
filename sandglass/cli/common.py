"""Options and output helpers shared by the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console

from sandglass.config import DEVICE
from sandglass.data.corpus import DataError
from sandglass.data.readers import read_lines, split_lines
from sandglass.precision import PRECISIONS
from sandglass.translator import Translator

CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="Run folder to load (default: the newest run under checkpoints/).",
        show_default=False,
    ),
]
BeamOption = Annotated[int, typer.Option("--beam", min=1, help="Beam size; 1 is greedy decoding.")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Sentences translated together.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (GPU when there is one), cpu, cuda or cuda:N.")]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        help="float32; bfloat16: about 2× faster in large batches on CPUs with AMX or AVX512-BF16 and on GPUs "
        "(scores can move by a few tenths); auto: bfloat16 where the hardware has it.",
    ),
]
EncodingErrorsOption = Annotated[
    str,
    typer.Option(
        "--encoding-errors",
        help="strict: stop at bytes that are not UTF-8; replace: put U+FFFD in their place.",
    ),
]
TRUNCATION_NOTE = (
    "A sentence longer than the model's source limit (its max_length, or the fixed length of the original "
    "SandGlass) is truncated to the limit."
)


def stdout_console() -> Console:
    """Rich output on stdout; lines are never wrapped (paths stay whole and copyable), tables fit the width."""
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=f"'{option}'")
    return value


def check_device(device: str) -> str:
    """``device`` if this machine has it, else a usage error."""
    if not DEVICE.fullmatch(device):
        raise typer.BadParameter(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N", param_hint="'--device'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise typer.BadParameter("this machine has no CUDA GPU; use --device cpu", param_hint="'--device'")
    return device


def load_translator(
    checkpoint: Path | None, device: str, batch_size: int = 64, precision: str = "float32"
) -> Translator:
    check_choice(precision, PRECISIONS, "--precision")
    return Translator.from_checkpoint(
        checkpoint, device=check_device(device), batch_size=batch_size, precision=precision
    )


def read_input(source: str, encoding_errors: str) -> list[str]:
    """The lines of a UTF-8 file (gzipped or not), or of standard input when ``source`` is ``-``."""
    check_choice(encoding_errors, ("strict", "replace"), "--encoding-errors")
    if source != "-":
        return read_lines(source, encoding_errors)
    raw = sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8-sig", errors=encoding_errors)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"standard input, line {line}: bytes {raw[error.start : error.end]!r} are not UTF-8; convert the "
            "text to UTF-8 or pass --encoding-errors replace"
        ) from None
    return split_lines(text)


def write_lines(lines: list[str], output: Path | None) -> None:
    """One line each, to ``output`` or to standard output, always as UTF-8."""
    text = "".join(line + "\n" for line in lines)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        return
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)  # absent when stdout was replaced by a text-only stream
    if binary is None:
        sys.stdout.write(text)
        return
    binary.write(text.encode("utf-8"))
    binary.flush()
