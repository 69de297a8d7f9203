import pytest

from sandglass.data.corpus import DataError, DataSplits, ParallelCorpus, word_counts

CORPUS = ParallelCorpus(
    ["a b", "a b c d e", "a", "", "a b c"],
    ["x y z", "x", "x y z w v u", "x", "x y"],
    name="tiny",
)


def test_sides_must_align():
    with pytest.raises(DataError, match="2 source sentences but 1 target"):
        ParallelCorpus(["a", "b"], ["x"], name="bad")


def test_length_and_pairs():
    assert len(CORPUS) == 5
    assert CORPUS.pairs()[1] == ("a b c d e", "x")


def test_filter_by_length_matches_a_loop():
    kept = CORPUS.filter_by_length(min_length=1, max_length=3)
    expected = [(s, t) for s, t in CORPUS.pairs() if 1 <= len(s.split()) <= 3 and 1 <= len(t.split()) <= 3]
    assert kept.pairs() == expected == [("a b", "x y z"), ("a b c", "x y")]


def test_filter_by_length_with_a_custom_count():
    characters = CORPUS.filter_by_length(max_length=5, count=lambda texts: [len(t) for t in texts])
    assert characters.pairs() == [("a b", "x y z"), ("a b c", "x y")]


def test_filter_that_leaves_nothing_says_so():
    with pytest.raises(
        DataError, match=r"tiny: no sentence pair is left .* 2\.\.2 \(out of 5 pairs, the longest has 6\)"
    ):
        CORPUS.filter_by_length(min_length=2, max_length=2)


def test_filter_rejects_min_above_max():
    with pytest.raises(DataError, match="min_length"):
        CORPUS.filter_by_length(min_length=4, max_length=2)


def test_word_counts():
    assert word_counts(["a  b", "", " c "]) == [2, 0, 1]


def test_holdout_is_a_deterministic_partition():
    corpus = ParallelCorpus([str(i) for i in range(50)], [f"t{i}" for i in range(50)])
    rest, held = corpus.holdout(7, seed=3)
    assert len(held) == 7 and len(rest) == 43
    assert sorted(rest.source + held.source, key=int) == corpus.source
    assert all(f"t{s}" == t for s, t in held.pairs() + rest.pairs())
    assert corpus.holdout(7, seed=3) == (rest, held)
    assert corpus.holdout(7, seed=4)[1] != held
    with pytest.raises(DataError, match="cannot hold out 50 of 50"):
        corpus.holdout(50)


def test_swapped():
    assert CORPUS.swapped().source == CORPUS.target
    splits = DataSplits(CORPUS, CORPUS, None).swapped()
    assert splits.valid.target == CORPUS.source and splits.test is None
