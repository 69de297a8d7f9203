import pytest

from sandglass.data.corpus import DataError
from sandglass.data.synthetic import load_synthetic, symbol_names, synthetic_corpus


def indices(text):
    return [int(word[1:]) for word in text.split()]


@pytest.mark.parametrize(
    ("task", "expected"),
    [("reverse", lambda s: s[::-1]), ("copy", lambda s: s), ("sort", sorted)],
)
def test_each_task_transforms_its_source(task, expected):
    corpus = synthetic_corpus(task, 200, seed=1)
    for source, target in corpus.pairs():
        assert indices(target) == expected(indices(source))


def test_reverse_is_the_original_sanity_check():
    corpus = synthetic_corpus("reverse", 2000, seed=0)
    lengths = [len(text.split()) for text in corpus.source]
    symbols = {word for text in corpus.source for word in text.split()}
    assert min(lengths) == 1 and max(lengths) == 23
    assert symbols == set(symbol_names(60)) and len(symbols) == 60
    assert any(source != target for source, target in corpus.pairs())


def test_symbols_sort_like_their_indices():
    names = symbol_names(60)
    assert names[:2] == ["s00", "s01"] and names[-1] == "s59" and sorted(names) == names


def test_deterministic_by_seed():
    assert synthetic_corpus("sort", 50, seed=5) == synthetic_corpus("sort", 50, seed=5)
    assert synthetic_corpus("sort", 50, seed=5) != synthetic_corpus("sort", 50, seed=6)


def test_splits_have_their_sizes_and_differ():
    splits = load_synthetic("copy", train_size=30, eval_size=8, seed=2, vocab_size=10, max_length=5)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (30, 8, 8)
    assert splits.valid != splits.test
    assert load_synthetic("copy", train_size=30, eval_size=8, seed=2, vocab_size=10, max_length=5) == splits
    assert {word for text in splits.train.source for word in text.split()} <= set(symbol_names(10))


def test_unknown_task_and_bad_sizes():
    with pytest.raises(DataError, match="unknown synthetic task 'shuffle'; available tasks: reverse, copy, sort"):
        synthetic_corpus("shuffle", 3)
    with pytest.raises(DataError, match="min_length <= max_length"):
        synthetic_corpus("copy", 3, min_length=5, max_length=2)
