"""The ``sandglass`` command: a Typer app whose commands live one concern per module."""

from __future__ import annotations

from typing import Annotated

import typer

from sandglass import __version__
from sandglass.cli.bench import BENCH_EPILOG, BENCH_HELP, DISTILL_EPILOG, DISTILL_HELP, bench_command, distill_command
from sandglass.cli.errors import DEBUG_VARIABLE, SandglassGroup
from sandglass.cli.repl import REPL_EPILOG, REPL_HELP, repl_command
from sandglass.cli.summary import SUMMARY_EPILOG, SUMMARY_HELP, summary_command
from sandglass.cli.train import PREPARE_EPILOG, PREPARE_HELP, TRAIN_EPILOG, TRAIN_HELP, prepare_command, train_command
from sandglass.cli.translate import (
    EVAL_EPILOG,
    EVAL_HELP,
    TRANSLATE_EPILOG,
    TRANSLATE_HELP,
    eval_command,
    translate_command,
)

app = typer.Typer(
    cls=SandglassGroup,
    name="sandglass",
    help="Convolutional sequence-to-sequence translation: train, translate, evaluate and inspect models.",
    epilog="Example: sandglass train --preset tiny --dataset reverse --max-time 5m && sandglass repl",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"sandglass {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar=DEBUG_VARIABLE, help="Show the traceback of an error (also after the command)."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Options that apply to every command."""


app.command("train", help=TRAIN_HELP, epilog=TRAIN_EPILOG)(train_command)
app.command("translate", help=TRANSLATE_HELP, epilog=TRANSLATE_EPILOG)(translate_command)
app.command("eval", help=EVAL_HELP, epilog=EVAL_EPILOG)(eval_command)
app.command("repl", help=REPL_HELP, epilog=REPL_EPILOG)(repl_command)
app.command("summary", help=SUMMARY_HELP, epilog=SUMMARY_EPILOG)(summary_command)
app.command("prepare", help=PREPARE_HELP, epilog=PREPARE_EPILOG)(prepare_command)
app.command("bench", help=BENCH_HELP, epilog=BENCH_EPILOG)(bench_command)
app.command("distill", help=DISTILL_HELP, epilog=DISTILL_EPILOG)(distill_command)
