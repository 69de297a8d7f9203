"""Corpus-level translation metrics through sacreBLEU, with the signatures that make scores reproducible."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER


@dataclass
class CorpusScores:
    """sacreBLEU scores on the 0–100 scale (TER: lower is better) and each metric's signature."""

    bleu: float
    bleu_lowercase: float
    chrf: float
    ter: float
    bleu_signature: str
    bleu_lowercase_signature: str
    chrf_signature: str
    ter_signature: str


def _check_pair(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references must have the same length, got {len(hypotheses)} and {len(references)}"
        )


def score_corpus(hypotheses: list[str], references: list[str]) -> CorpusScores:
    """BLEU (cased, 13a tokenization), lowercased BLEU, chrF and TER (sacreBLEU defaults) against one
    reference per sentence, on detokenized text."""
    _check_pair(hypotheses, references)
    bleu, bleu_lowercase = BLEU(tokenize="13a"), BLEU(tokenize="13a", lowercase=True)
    chrf, ter = CHRF(), TER()
    reference_sets = [references]
    return CorpusScores(
        bleu=bleu.corpus_score(hypotheses, reference_sets).score,
        bleu_lowercase=bleu_lowercase.corpus_score(hypotheses, reference_sets).score,
        chrf=chrf.corpus_score(hypotheses, reference_sets).score,
        ter=ter.corpus_score(hypotheses, reference_sets).score,
        bleu_signature=str(bleu.get_signature()),
        bleu_lowercase_signature=str(bleu_lowercase.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        ter_signature=str(ter.get_signature()),
    )


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """Percentage (0–100) of hypotheses equal to their reference after stripping surrounding whitespace
    (0 for an empty corpus)."""
    _check_pair(hypotheses, references)
    if not hypotheses:
        return 0.0
    matches = sum(hyp.strip() == ref.strip() for hyp, ref in zip(hypotheses, references, strict=True))
    return 100.0 * matches / len(hypotheses)
