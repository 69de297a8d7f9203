import pytest
import sacrebleu

from sandglass.metrics import exact_match, score_corpus

REFERENCES = ["A man is riding a bicycle down the street .", "Two dogs play in the snow ."]


def test_perfect_hypotheses_score_100_with_13a_signatures():
    scores = score_corpus(REFERENCES, REFERENCES)
    assert scores.bleu == pytest.approx(100.0)
    assert scores.bleu_lowercase == pytest.approx(100.0)
    assert scores.chrf == pytest.approx(100.0)
    assert scores.ter == pytest.approx(0.0)
    assert "tok:13a" in scores.bleu_signature and "case:mixed" in scores.bleu_signature
    assert "tok:13a" in scores.bleu_lowercase_signature and "case:lc" in scores.bleu_lowercase_signature
    assert scores.chrf_signature.startswith("nrefs:1") and "tok:tercom" in scores.ter_signature


def test_case_only_differences_lower_cased_bleu_only():
    scores = score_corpus([sentence.upper() for sentence in REFERENCES], REFERENCES)
    assert scores.bleu < 50.0
    assert scores.bleu_lowercase == pytest.approx(100.0)


def test_scores_match_sacrebleu_on_an_imperfect_corpus():
    hypotheses = ["A man rides a bike down the road .", "Two dogs are playing in snow ."]
    scores = score_corpus(hypotheses, REFERENCES)
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [REFERENCES]).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [REFERENCES]).score)
    assert scores.ter == pytest.approx(sacrebleu.corpus_ter(hypotheses, [REFERENCES]).score)
    assert 0.0 < scores.bleu < 100.0 and scores.ter > 0.0


def test_exact_match_is_a_percentage_of_equal_sentences():
    assert exact_match(["a b", " c ", "d"], ["a b", "c", "e"]) == pytest.approx(200.0 / 3)
    assert exact_match([], []) == 0.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="same length"):
        score_corpus(["a"], REFERENCES)
    with pytest.raises(ValueError, match="same length"):
        exact_match(["a"], [])
