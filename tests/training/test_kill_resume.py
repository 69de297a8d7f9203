"""Faults that end a real ``sandglass train`` process: ``kill -9`` at random moments, SIGINT and SIGTERM.

Each test starts ``python -m sandglass train`` on a tiny model and a small TSV corpus it writes, with a
checkpoint every two steps so that kills land while checkpoints are being written.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandglass.checkpoint import CONFIG_FILE, TOKENIZER_FILE, load_run, load_weights
from sandglass.config import RunConfig
from sandglass.models import build_model
from sandglass.tokenizer import Tokenizer
from sandglass.training.state import read_resume_state

KILLS = 5
MAX_STEPS = 400
SEED = 2024
STARTUP_TIMEOUT = 60.0
CHECKPOINT_LINE = re.compile(r"checkpoint of step ([\d,]+) saved")
RESUMING_LINE = re.compile(r"resuming at step ([\d,]+)")
CONFIG_TOML = """\
[model]
preset = "transformer-tiny"
d_model = 32
ffn_dim = 64
max_length = 16
[data]
dataset = "{dataset}"
vocab_size = 60
max_length = 12
[train]
max_tokens = 256
warmup_steps = 10
log_every = 10
validate_every = 50
checkpoint_every = 2
patience = 1000
max_steps = {max_steps}
device = "cpu"
"""


class TrainingProcess:
    """``python -m sandglass ARGS`` in ``cwd``, its standard output read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
        self.stderr_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandglass", *args],
                cwd=cwd,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                encoding="utf-8",
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern, timeout: float = STARTUP_TIMEOUT) -> re.Match:
        """The first line from now on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if match := pattern.search(line):
                return match
        self.kill()
        raise AssertionError(f"no line matching {pattern.pattern!r}; output:\n{self.output()}")

    def drain(self) -> None:
        """Collect what is left of the output once the process has ended."""
        while (line := self._queue.get(timeout=STARTUP_TIMEOUT)) is not None:
            self.lines.append(line)

    def last_saved_step(self) -> int:
        saved = [int(m.group(1).replace(",", "")) for line in self.lines if (m := CHECKPOINT_LINE.search(line))]
        return max(saved)

    def kill(self, number: int = signal.SIGKILL) -> int:
        if self.process.poll() is None:
            self.process.send_signal(number)
        return self.process.wait(timeout=STARTUP_TIMEOUT)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def output(self) -> str:
        return "\n".join(self.lines) + "\n--- stderr ---\n" + self.stderr()


def write_corpus(path: Path, pairs: int = 300) -> None:
    """A reversal task as a headerless two-column TSV of short word sequences."""
    rng = random.Random(SEED)
    rows = []
    for _ in range(pairs):
        words = [f"w{rng.randrange(30)}" for _ in range(rng.randint(1, 8))]
        rows.append(" ".join(words) + "\t" + " ".join(reversed(words)))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "pairs.tsv")
    config = CONFIG_TOML.format(dataset=(tmp_path / "pairs.tsv").as_posix(), max_steps=MAX_STEPS)
    (tmp_path / "run.toml").write_text(config, encoding="utf-8")
    return tmp_path


def start_training(workspace: Path, *, resume: bool) -> TrainingProcess:
    run_dir = str(workspace / "run")
    if resume:
        args = ["train", "--resume", "--run-dir", run_dir]
    else:
        args = ["train", "--config", "run.toml", "--run-dir", run_dir, "--data-cache", "cache"]
    return TrainingProcess(args, workspace)


def assert_every_checkpoint_file_loads(run_dir: Path) -> int:
    """Load every checkpoint file on disk (weights as safetensors, trainer state weights-only); the state's step."""
    config = RunConfig.load(run_dir / CONFIG_FILE)
    tokenizer = Tokenizer.load(run_dir / TOKENIZER_FILE)
    weights_files = sorted(run_dir.glob("*.safetensors"))
    assert weights_files
    for weights in weights_files:
        load_weights(build_model(config.model, tokenizer.vocab_size), weights)
    state = read_resume_state(run_dir)  # torch.load(weights_only=True) and a format check
    assert (run_dir / state["weights_file"]) in weights_files
    return int(state["step"])


def checkpoint_temporaries(run_dir: Path) -> list[str]:
    """Weights or trainer state being written: ``.last-….safetensors.….tmp``, ``.trainer.pt.….tmp``, …"""
    names = os.listdir(run_dir)
    return [name for name in names if name.endswith(".tmp") and (".safetensors." in name or ".trainer.pt." in name)]


def kill_during_a_write(training: TrainingProcess, run_dir: Path, timeout: float = 20.0) -> bool:
    """SIGKILL as soon as a temporary checkpoint file shows up; True when one was left behind (killed mid-write)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and training.process.poll() is None and not checkpoint_temporaries(run_dir):
        pass
    training.kill()
    return bool(checkpoint_temporaries(run_dir))


def test_kill_9_at_random_moments_then_resume_finishes_the_run(workspace):
    """Fault: kill -9 at random moments (also during a checkpoint write), each followed by train --resume."""
    rng = random.Random(SEED)
    run_dir = workspace / "run"
    plan = ["random", "write", "random", "write", "random"]
    kills, killed_mid_write, step_on_disk = 0, 0, None
    while kills < KILLS or (killed_mid_write == 0 and kills < KILLS + 3):
        kind = plan[kills] if kills < len(plan) else "write"
        training = start_training(workspace, resume=step_on_disk is not None)
        if step_on_disk is not None:
            resumed_at = int(training.wait_for(RESUMING_LINE).group(1).replace(",", ""))
            assert resumed_at == step_on_disk, training.output()
        training.wait_for(CHECKPOINT_LINE)  # this session has made progress
        if kind == "random":
            time.sleep(rng.uniform(0.0, 0.4))
            assert training.process.poll() is None, "the run ended before it was killed: raise MAX_STEPS"
            training.kill()
            assert not training.stderr(), training.output()
        else:
            killed_mid_write += kill_during_a_write(training, run_dir)
        assert training.process.returncode == -signal.SIGKILL
        training.drain()
        kills += 1
        step_on_disk = assert_every_checkpoint_file_loads(run_dir)
        assert step_on_disk >= training.last_saved_step(), training.output()  # the last complete checkpoint
        assert step_on_disk < MAX_STEPS
    assert killed_mid_write >= 1, "no kill landed while a checkpoint was being written"

    final = start_training(workspace, resume=True)
    assert final.process.wait(timeout=120) == 0, final.output()
    final.drain()
    assert any(f"finished (max steps) after {MAX_STEPS} steps" in line for line in final.lines), final.output()
    assert assert_every_checkpoint_file_loads(run_dir) == MAX_STEPS
    assert load_run(run_dir).config.train.max_steps == MAX_STEPS
    assert [path.name for path in run_dir.glob("last-*.safetensors")] == [f"last-{MAX_STEPS:08d}.safetensors"]
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.parametrize(("signal_number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_says_where_and_exits_non_zero(workspace, signal_number, status):
    """Fault: SIGINT (Ctrl-C) or SIGTERM during training of a real process."""
    run_dir = workspace / "run"
    training = start_training(workspace, resume=False)
    training.wait_for(CHECKPOINT_LINE)
    assert training.kill(signal_number) == status, training.output()
    training.drain()
    error = training.stderr().strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: training interrupted by "), training.output()
    assert str(run_dir) in error[0] and "--resume" in error[0]
    step = assert_every_checkpoint_file_loads(run_dir)
    assert step >= training.last_saved_step() and not list(run_dir.glob(".*.tmp"))
