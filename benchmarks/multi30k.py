"""SandGlass against the Transformer reference on Multi30k: the same as ``sandglass bench``.

Run: ``python benchmarks/multi30k.py --budget 30m [--distill] [--both-directions] [--output DIR]``; every option of
``sandglass bench --help`` works. It writes ``bench.json``, ``bench.md`` and ``validation_bleu.png`` into the
output folder; the figures kept are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import sys

from sandglass.cli import app

if __name__ == "__main__":  # the guard matters: each model trains in a spawned process that imports this file
    app(["bench", *sys.argv[1:]], prog_name="multi30k.py")
