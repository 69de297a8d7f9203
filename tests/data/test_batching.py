import random

import pytest
import torch

from sandglass.data.batching import collate, iterate_batches, pad_sequences, token_budget_batches

PAD = 7


def random_lengths(count, seed, longest=30):
    rng = random.Random(seed)
    return [rng.randint(0, longest) for _ in range(count)], [rng.randint(1, longest) for _ in range(count)]


def test_pad_sequences_matches_a_loop():
    sequences = [[4, 5, 6], [], [8], [9, 10, 11, 12]]
    ids, mask = pad_sequences(sequences, PAD)
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == mask.shape == (4, 4)
    for row, sequence in enumerate(sequences):
        for column in range(4):
            real = column < len(sequence)
            assert mask[row, column].item() == real
            assert ids[row, column].item() == (sequence[column] if real else PAD)


def test_collate_builds_a_batch():
    batch = collate([[4, 5], [6]], [[8], [9, 10, 11]], PAD, indices=[12, 3])
    assert batch.src.tolist() == [[4, 5], [6, PAD]] and batch.src_mask.tolist() == [
        [True, True],
        [True, False],
    ]
    assert batch.tgt.tolist() == [[8, PAD, PAD], [9, 10, 11]]
    assert batch.tgt_mask.sum(dim=1).tolist() == [1, 3]
    assert batch.indices.tolist() == [12, 3] and len(batch) == 2
    assert collate([[1]], [[2]], 0).indices.tolist() == [0]
    moved = batch.to("cpu")
    assert torch.equal(moved.tgt, batch.tgt)


def test_collate_needs_aligned_sides():
    with pytest.raises(ValueError, match="as many targets as sources"):
        collate([[1]], [], PAD)


@pytest.mark.parametrize("max_size", [None, 5])
def test_batches_fit_the_budget_and_cover_every_index_once(max_size):
    src_lengths, tgt_lengths = random_lengths(500, seed=0)
    batches = token_budget_batches(src_lengths, tgt_lengths, 120, max_size=max_size, seed=4)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        longest = max(max(src_lengths[i], tgt_lengths[i]) for i in batch)
        assert len(batch) * longest <= 120
        assert max_size is None or len(batch) <= max_size


def test_batches_group_similar_lengths():
    src_lengths, tgt_lengths = random_lengths(500, seed=1)
    batches = token_budget_batches(src_lengths, tgt_lengths, 200, shuffle=False)
    lengths = [[max(src_lengths[i], tgt_lengths[i]) for i in batch] for batch in batches]
    flat = [length for batch in lengths for length in batch]
    assert flat == sorted(flat)
    padded = sum(len(batch) * max(batch) for batch in lengths)
    assert padded < 1.2 * sum(flat)


def test_batches_are_deterministic_by_seed():
    src_lengths, tgt_lengths = random_lengths(300, seed=2)
    first = token_budget_batches(src_lengths, tgt_lengths, 100, seed=11)
    assert token_budget_batches(src_lengths, tgt_lengths, 100, seed=11) == first
    assert token_budget_batches(src_lengths, tgt_lengths, 100, seed=12) != first


def test_a_pair_longer_than_the_budget_is_an_error():
    with pytest.raises(ValueError, match=r"pair 1 has 9 tokens, more than max_tokens=8"):
        token_budget_batches([1, 9], [2, 3], 8)
    with pytest.raises(ValueError, match="max_tokens must be a positive integer"):
        token_budget_batches([1], [1], 0)
    with pytest.raises(ValueError, match="max_size must be a positive integer"):
        token_budget_batches([1], [1], 4, max_size=0)


def test_iterate_batches_resumes_at_a_batch_index():
    src_ids = [[i + 4] * (i % 5 + 1) for i in range(40)]
    tgt_ids = [[i + 4] for i in range(40)]
    batches = token_budget_batches([len(s) for s in src_ids], [1] * 40, 12, seed=0)
    all_batches = list(iterate_batches(src_ids, tgt_ids, batches, PAD))
    resumed = list(iterate_batches(src_ids, tgt_ids, batches, PAD, start=3))
    assert len(all_batches) == len(batches) and len(resumed) == len(batches) - 3
    assert torch.equal(resumed[0].src, all_batches[3].src)
    for batch in all_batches:
        for row, index in enumerate(batch.indices.tolist()):
            assert batch.src[row][batch.src_mask[row]].tolist() == src_ids[index]
