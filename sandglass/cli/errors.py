"""One line per mistake: every error a user can cause ends the command with ``error: …`` on stderr.

Exit status 2 for usage mistakes (bad option values, conflicting flags, a bad configuration), 1 for everything
else (missing or damaged files, data, checkpoints), 130/143 when training was interrupted by SIGINT/SIGTERM.
``--debug`` (anywhere on the command line) or ``SANDGLASS_DEBUG=1`` also prints the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from sandglass.checkpoint import CheckpointError
from sandglass.config import ConfigError
from sandglass.data.corpus import DataError
from sandglass.tokenizer import TokenizerError
from sandglass.training import TrainingInterrupted, TrainingStopped

try:  # recent typer bundles its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - typer versions that use the click package
    from click import exceptions as click_exceptions

ClickException, UsageError = click_exceptions.ClickException, click_exceptions.UsageError
# Raised for a bare `sandglass` after the help has been shown (click >= 8.2 only).
NoArgsIsHelpError = getattr(click_exceptions, "NoArgsIsHelpError", ())

EXIT_FAILURE = 1
EXIT_USAGE = 2
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "SANDGLASS_DEBUG"

USAGE_ERRORS = (ConfigError,)
FAILURES = (DataError, CheckpointError, TokenizerError, TrainingStopped)


def print_error(message: str) -> None:
    """``error: message`` on stderr, on one line however long."""
    line = Text.assemble(("error:", "bold red"), " ", " ".join(message.splitlines()))
    Console(stderr=True, highlight=False, soft_wrap=True).print(line)


def describe(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception raised while a command ran."""
    if isinstance(error, TrainingInterrupted):
        run_dir = error.checkpoint_path.parent
        message = (
            f"training interrupted by {error.signal_name}; the checkpoint is in {run_dir}; continue with "
            f"`sandglass train --resume --run-dir {run_dir}`"
        )
        return message, SIGNAL_EXIT_CODES.get(error.signal_name, EXIT_FAILURE)
    if isinstance(error, USAGE_ERRORS):
        return str(error), EXIT_USAGE
    if isinstance(error, FAILURES):
        return str(error), EXIT_FAILURE
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}", EXIT_FAILURE
    return (
        f"unexpected {type(error).__name__}: {error} (this is a bug; rerun with --debug and report the traceback)",
        EXIT_FAILURE,
    )


def before_separator(args: Sequence[str]) -> list[str]:
    """The arguments before ``--`` (after it every argument is a value, never an option)."""
    args = list(args)
    return args[: args.index("--")] if "--" in args else args


def debug_requested(args: Sequence[str]) -> bool:
    return DEBUG_FLAG in before_separator(args) or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


class SandglassGroup(TyperGroup):
    """The top-level command group: turns every error into one ``error:`` line and an exit status."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> NoReturn:
        extra.pop("standalone_mode", None)
        try:
            status = super().main(args, prog_name, standalone_mode=False, **extra)
        except NoArgsIsHelpError:
            sys.exit(0)
        except UsageError as error:
            print_error(_usage_message(error))
            sys.exit(EXIT_USAGE)
        except ClickException as error:
            print_error(error.format_message())
            sys.exit(error.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(EXIT_FAILURE)
        sys.exit(status if isinstance(status, int) else 0)

    def invoke(self, ctx: typer.Context) -> Any:
        # --debug is accepted after the command name too: take it out before the command parses its options.
        debug = bool(ctx.params.get("debug")) or debug_requested(ctx.args)
        options = before_separator(ctx.args)
        ctx.args = [arg for arg in options if arg != DEBUG_FLAG] + ctx.args[len(options) :]
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort, BrokenPipeError):
            raise  # handled by click/typer (a closed pipe, as in `sandglass translate … | head`, exits quietly)
        except Exception as error:
            if debug:
                traceback.print_exc(file=sys.stderr)
            message, code = describe(error)
            print_error(message)
            raise typer.Exit(code) from error


def _usage_message(error: UsageError) -> str:
    message = error.format_message().rstrip(".")
    if error.ctx is not None:
        message += f"; see `{error.ctx.command_path} --help`"
    return message
