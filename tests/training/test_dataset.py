import pytest

from sandglass.config import ConfigError, DataConfig, RunConfig, preset
from sandglass.data.corpus import DataError, DataSplits, ParallelCorpus
from sandglass.tokenizer import Tokenizer
from sandglass.training.dataset import (
    batching_lengths,
    encode_split,
    for_task,
    load_run_splits,
    require_budget,
    token_limit,
)

PAIRS = ParallelCorpus(["a b", "a b c d e", "c", "d e"], ["x", "y y", "z z z z", "x y"], "pairs")


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(PAIRS.source + PAIRS.target, vocab_size=20, model_type="word")


def test_reconstruct_makes_every_target_its_source():
    splits = for_task(DataSplits(PAIRS, PAIRS), "reconstruct")
    assert splits.train.target == PAIRS.source and splits.valid.source == PAIRS.source
    assert for_task(DataSplits(PAIRS, PAIRS), "translate").train.target == PAIRS.target
    with pytest.raises(DataError, match="unknown task 'summarize'"):
        for_task(DataSplits(PAIRS, PAIRS), "summarize")


def test_pairs_longer_than_the_limit_on_either_side_are_dropped(tokenizer):
    split = encode_split(PAIRS, tokenizer, max_length=2)
    assert split.references == ["x", "x y"]
    assert [len(ids) for ids in split.source_ids] == [2, 2]
    with pytest.raises(DataError, match="no sentence pair has 1 to 0 tokens"):
        encode_split(PAIRS, tokenizer, max_length=0)
    with pytest.raises(ConfigError, match="train.max_tokens=1"):
        require_budget(split, 1)


def test_the_token_limit_respects_what_the_model_holds():
    original = RunConfig(model=preset("original").model)
    original.data.max_length = 100
    assert token_limit(original) == original.model.sequence_length
    transformer = RunConfig(model=preset("transformer-tiny").model)
    transformer.data.max_length = 1000
    assert token_limit(transformer) == transformer.model.max_length - 1


def test_the_synthetic_task_settings_shape_the_splits():
    data = DataConfig(dataset="reverse", train_size=40, eval_size=7, symbols=5, min_symbols=2, max_symbols=3)
    splits = load_run_splits(data)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (40, 7, 7)
    sequences = [line.split() for line in splits.train.source + splits.test.source]
    assert {len(words) for words in sequences} == {2, 3}
    assert {word for words in sequences for word in words} <= {f"s{index}" for index in range(5)}
    assert splits.train.target[0].split() == splits.train.source[0].split()[::-1]


def test_the_fixed_length_original_is_batched_at_random_not_by_length(tokenizer):
    split = encode_split(PAIRS, tokenizer, max_length=5)
    original = preset("original").model
    assert batching_lengths(split, original) == ([original.sequence_length] * 4, [original.sequence_length] * 4)
    assert batching_lengths(split, preset("tiny").model) == ([2, 5, 1, 2], [1, 2, 4, 2])
