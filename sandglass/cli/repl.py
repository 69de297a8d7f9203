"""``sandglass repl``: type a sentence, see its translation and how long it took."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.text import Text

from sandglass.cli.common import (
    TRUNCATION_NOTE,
    BeamOption,
    CheckpointOption,
    DeviceOption,
    load_translator,
    stdout_console,
)
from sandglass.translator import Translator

REPL_HELP = (
    "Translate sentences as you type them, with the time each took.\n\n"
    "Commands: :help, :beam N (beam size), :quit. Ctrl-D or Ctrl-C leaves. Up and down arrows recall earlier "
    "lines where readline is available. Typed bytes that are not UTF-8 are read as U+FFFD. "
    f"{TRUNCATION_NOTE}"
)
REPL_EPILOG = "Example: sandglass repl --checkpoint checkpoints/tiny-multi30k --beam 4"
COMMANDS_HELP = ":help  this text\n:beam N  use beam size N (1 is greedy)\n:quit  leave (also Ctrl-D or Ctrl-C)"
QUIT_COMMANDS = (":quit", ":q", ":exit")
PROMPT = "[bold cyan]>[/bold cyan] "


def repl_command(checkpoint: CheckpointOption = None, beam: BeamOption = 1, device: DeviceOption = "auto") -> None:
    translator = load_translator(checkpoint, device, batch_size=1)
    console = stdout_console()
    console.print(
        Text(f"sandglass {translator.run.config.model.arch} model from {translator.run.path}; ")
        + Text("type a sentence, :help for commands, :quit to leave", style="dim")
    )
    enable_history()
    replace_undecodable_input()
    session = ReplSession(translator, console, beam)
    while True:
        try:
            line = console.input(PROMPT)
            if not session.handle(line):
                return
        except (EOFError, KeyboardInterrupt):
            console.print()
            return


class ReplSession:
    """What the REPL does with each line it reads: commands start with a colon, anything else is translated."""

    def __init__(self, translator: Translator, console: Console, beam: int) -> None:
        self.translator = translator
        self.console = console
        self.beam = beam

    def handle(self, line: str) -> bool:
        """Act on one line; False when the session should end."""
        text = line.strip()
        if not text:
            return True
        if text in QUIT_COMMANDS:
            return False
        if text == ":help":
            self.console.print(COMMANDS_HELP, markup=False)
        elif text.startswith(":beam"):
            self.set_beam(text[len(":beam") :].strip())
        elif text.startswith(":"):
            self.console.print(f"unknown command {text.split()[0]}; type :help", style="yellow", markup=False)
        else:
            self.translate(line)
        return True

    def set_beam(self, argument: str) -> None:
        if not argument.isdigit() or int(argument) < 1:
            self.console.print(f"beam size must be a positive integer, got {argument!r}", style="yellow")
            return
        self.beam = int(argument)
        self.console.print(f"beam size {self.beam}", style="dim")

    def translate(self, line: str) -> None:
        [translation], timing = self.translator.translate_timed([line], beam_size=self.beam)
        self.console.print(Text(translation, style="bold"))
        note = f"{timing.milliseconds:.0f} ms, beam {self.beam}"
        if timing.truncated:
            note += f", truncated to {self.translator.max_source_tokens} tokens"
        self.console.print(note, style="dim")


def replace_undecodable_input() -> None:
    """Typed bytes that are not UTF-8 become U+FFFD (as with --encoding-errors replace) instead of an error."""
    reconfigure = getattr(sys.stdin, "reconfigure", None)  # absent when stdin was replaced by another stream
    if reconfigure is not None:
        reconfigure(errors="replace")


def enable_history() -> None:
    """Line editing and history for ``input`` on a terminal (readline is missing on some platforms)."""
    if not sys.stdin.isatty():
        return
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  # importing it is what enables history for input()
