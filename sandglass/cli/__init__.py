"""The ``sandglass`` command line: train, translate, eval, repl, summary, prepare."""

from sandglass.cli.app import app

__all__ = ["app"]
