"""Translate lines of text with a trained run: one output line per input line, batched by length."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sandglass.checkpoint import LoadedRun, latest_run, load_run
from sandglass.data.batching import pad_sequences
from sandglass.inference import generate
from sandglass.models.build import max_source_tokens
from sandglass.precision import autocast_for, uses_bfloat16, with_product_weights_in


@dataclass(frozen=True)
class TranslationTiming:
    """How long a call to :meth:`Translator.translate_timed` took and how much it translated.

    ``sentences`` counts the lines that went through the model (not the empty ones); ``source_tokens`` their
    tokens after truncation; ``truncated`` the lines cut to the model's source limit.
    """

    seconds: float
    sentences: int
    source_tokens: int
    truncated: int

    @property
    def milliseconds(self) -> float:
        return 1000.0 * self.seconds


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` is the GPU when there is one, else the CPU; any other name is passed to ``torch.device``."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from error


class Translator:
    """A trained run ready to translate: text in, detokenized text out.

    Each input line gives exactly one output line, in order. Empty and whitespace-only lines give "" without
    running the model. A line longer than the model's source limit (``max_source_tokens``: the model's
    ``max_length``, or the original SandGlass's fixed ``sequence_length``) is truncated to that many tokens
    and the rest of it is not translated. Sentences are sorted by length and run ``batch_size`` at a time.

    ``precision``: ``bfloat16`` runs the model under bf16 autocast (on CPUs with AMX or AVX512-BF16 and on GPUs
    about twice as fast at batch 64; at batch 1 the gain depends on the CPU; scores can move by a few tenths of a
    BLEU point; the weights of its matrix products are cast to bf16 once, in a copy of the model);
    ``auto`` picks it where the hardware multiplies bf16 natively; ``float32`` (the default) never does.
    """

    def __init__(
        self,
        run: LoadedRun,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        precision: str = "float32",
    ) -> None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.run = run
        self.device = resolve_device(device)
        self.precision = "bfloat16" if uses_bfloat16(self.device, precision) else "float32"
        self.model = run.model.to(self.device).eval()
        # The model that translates: under bf16 a copy whose matrix-product weights are cast once, not per call.
        self.inference_model = (
            with_product_weights_in(self.model, torch.bfloat16) if self.precision == "bfloat16" else self.model
        )
        self.tokenizer = run.tokenizer
        self.batch_size = int(batch_size)
        self.max_source_tokens = max_source_tokens(run.config.model)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        precision: str = "float32",
        root: str | Path = "checkpoints",
    ) -> Translator:
        """Load the run folder ``path``, or the newest run under ``root`` when ``path`` is None."""
        run_dir = latest_run(Path(root)) if path is None else Path(path)
        device = resolve_device(device)
        return cls(load_run(run_dir, device=device), device=device, batch_size=batch_size, precision=precision)

    def translate(
        self,
        lines: Sequence[str],
        *,
        beam_size: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """The translation of each line (see the class docstring for empty and over-long lines)."""
        return self.translate_timed(lines, beam_size=beam_size, on_batch=on_batch)[0]

    def translate_timed(
        self,
        lines: Sequence[str],
        *,
        beam_size: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[list[str], TranslationTiming]:
        """Like :meth:`translate`, with the time taken. ``on_batch(n)`` is called after each batch of ``n``
        sentences (for a progress bar)."""
        if int(beam_size) != beam_size or beam_size < 1:
            raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
        start = time.perf_counter()
        outputs = [""] * len(lines)
        source_ids, truncated = self._encode(lines)
        order = sorted((i for i, ids in source_ids.items() if ids), key=lambda i: len(source_ids[i]))
        # bf16 autocast casts each weight once per context: one context for the whole call casts the weights
        # once, where a context per batch would cast them again for every batch (every sentence at batch 1).
        with autocast_for(self.device, self.precision):
            for first in range(0, len(order), self.batch_size):
                indices = order[first : first + self.batch_size]
                texts = self._translate_batch([source_ids[i] for i in indices], int(beam_size))
                for index, text in zip(indices, texts, strict=True):
                    outputs[index] = text
                if on_batch is not None:
                    on_batch(len(indices))
        timing = TranslationTiming(
            seconds=time.perf_counter() - start,
            sentences=len(order),
            source_tokens=sum(len(source_ids[i]) for i in order),
            truncated=truncated,
        )
        return outputs, timing

    def _encode(self, lines: Sequence[str]) -> tuple[dict[int, list[int]], int]:
        """Token ids of the non-blank lines by line number, truncated to the source limit, and how many were."""
        wanted = [i for i, line in enumerate(lines) if line.strip()]
        encoded = self.tokenizer.encode([lines[i] for i in wanted]) if wanted else []
        truncated = sum(len(ids) > self.max_source_tokens for ids in encoded)
        return {i: ids[: self.max_source_tokens] for i, ids in zip(wanted, encoded, strict=True)}, truncated

    def _translate_batch(self, source_ids: list[list[int]], beam_size: int) -> list[str]:
        src, src_mask = pad_sequences(source_ids, self.tokenizer.pad_id)
        output_ids = generate(self.inference_model, src.to(self.device), src_mask.to(self.device), beam_size=beam_size)
        # A translation must stay on one line, whatever characters the vocabulary holds.
        return [" ".join(text.splitlines()) for text in self.tokenizer.decode(output_ids)]
