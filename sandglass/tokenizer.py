"""A joint sentencepiece tokenizer with fixed special ids (pad 0, unk 1, bos 2, eos 3).

The serialized model (``to_bytes``) is small enough to store inside every checkpoint, so a checkpoint decodes
its own outputs. ``train_or_load`` caches trained models as ``tokenizer-<hash>.model``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch

from sandglass.files import regular_file_mode

MODEL_TYPES = ("unigram", "bpe", "word", "char")
# Lone surrogates cannot be UTF-8 (they come from undecodable bytes read with surrogateescape, e.g. a terminal
# in a UTF-8-mode Python); sentencepiece would raise on them.
_SURROGATE = re.compile("[\ud800-\udfff]")


class TokenizerError(ValueError):
    """A tokenizer model that cannot be trained, read or used; the message says which and why."""


class Tokenizer:
    """Text ↔ token ids through a sentencepiece model whose special ids are pad 0, unk 1, bos 2, eos 3."""

    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3

    def __init__(self, model_proto: bytes) -> None:
        self._proto = bytes(model_proto)
        self._processor = spm.SentencePieceProcessor()
        try:
            self._processor.LoadFromSerializedProto(self._proto)
        except (RuntimeError, OSError) as error:
            raise TokenizerError(f"not a sentencepiece model ({' '.join(str(error).split())})") from None
        found = (
            self._processor.pad_id(),
            self._processor.unk_id(),
            self._processor.bos_id(),
            self._processor.eos_id(),
        )
        if found != (self.pad_id, self.unk_id, self.bos_id, self.eos_id):
            raise TokenizerError(
                f"the sentencepiece model has special ids pad, unk, bos, eos = {found}; sandglass needs (0, 1, 2, 3)"
            )

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
    ) -> Tokenizer:
        """Train on sentences held in memory (source and target together for a joint vocabulary).

        ``vocab_size`` is an upper bound: a tiny corpus may give fewer pieces. ``model_type="word"`` gives one
        id per whitespace-separated word (right for the synthetic symbol tasks).
        """
        if model_type not in MODEL_TYPES:
            raise TokenizerError(f"model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
        if int(vocab_size) != vocab_size or vocab_size <= 4:
            raise TokenizerError(f"vocab_size must be an integer above 4 (the special pieces), got {vocab_size!r}")
        sentences = [text for text in texts if text.strip()]
        if not sentences:
            raise TokenizerError("cannot train a tokenizer on no text: every training sentence is empty")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                hard_vocab_limit=False,
                pad_id=cls.pad_id,
                unk_id=cls.unk_id,
                bos_id=cls.bos_id,
                eos_id=cls.eos_id,
                minloglevel=2,  # sentencepiece logs to stderr by default; the library never prints
                num_threads=min(8, os.cpu_count() or 1),
            )
        except RuntimeError as error:
            raise TokenizerError(f"sentencepiece training failed: {' '.join(str(error).split())}") from None
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False) -> list[list[int]]:
        """Token ids of each text; a lone surrogate is read as U+FFFD (the replacement character)."""
        texts = [_SURROGATE.sub("\ufffd", text) for text in texts]
        return self._processor.encode(texts, out_type=int, add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: Sequence[Sequence[int]] | torch.Tensor) -> list[str]:
        """Text of each id sequence: it ends at the first eos; pad and bos ids are dropped."""
        rows = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        kept = []
        for row in rows:
            row = list(row)
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            kept.append([i for i in row if i != self.pad_id and i != self.bos_id])
        size = self.vocab_size
        out_of_range = [i for row in kept for i in row if not 0 <= i < size]
        if out_of_range:
            raise TokenizerError(f"token id {out_of_range[0]} is outside the vocabulary (0..{size - 1})")
        # One thread: sentencepiece starts its threads for every call, and beside torch's busy worker threads that
        # made decoding 64 translations to text five times slower (29 against 6 ms for the 1,014 test sentences).
        return self._processor.decode(kept, num_threads=1) if kept else []

    def id_to_piece(self, index: int) -> str:
        return self._processor.id_to_piece(index)

    def to_bytes(self) -> bytes:
        """The serialized sentencepiece model (store it in a checkpoint; ``from_bytes`` reads it back)."""
        return self._proto

    @classmethod
    def from_bytes(cls, model_proto: bytes) -> Tokenizer:
        return cls(model_proto)

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` atomically (a partly written file is never left under that name)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            try:
                os.fchmod(handle.fileno(), regular_file_mode())
                handle.write(self._proto)
                handle.flush()
            except BaseException:
                handle.close()
                Path(handle.name).unlink(missing_ok=True)
                raise
        try:
            os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        try:
            proto = Path(path).read_bytes()
        except OSError as error:
            raise TokenizerError(f"cannot read the tokenizer model {path}: {error.strerror or error}") from None
        try:
            return cls(proto)
        except TokenizerError as error:
            raise TokenizerError(f"{path}: {error}; delete the file to train a new one") from None


def cache_key(texts: Sequence[str], options: dict[str, Any]) -> str:
    """A hash of the training text and options, naming the cached model."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for text in texts:
        encoded = text.encode("utf-8", errors="surrogatepass")
        digest.update(f"{len(encoded)}:".encode())  # length-prefixed, so no text boundary is ambiguous
        digest.update(encoded)
    return digest.hexdigest()[:16]


def train_or_load(texts: Iterable[str], cache_dir: str | Path, **options: Any) -> Tokenizer:
    """The tokenizer cached in ``cache_dir`` for these texts and ``Tokenizer.train`` options, trained once."""
    texts = list(texts)
    path = Path(cache_dir) / f"tokenizer-{cache_key(texts, options)}.model"
    if path.is_file():
        return Tokenizer.load(path)
    tokenizer = Tokenizer.train(texts, **options)
    tokenizer.save(path)
    return tokenizer
