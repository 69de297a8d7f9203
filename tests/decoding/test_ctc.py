import itertools
import math

import pytest
import torch

from sandglass.decoding.ctc import ctc_collapse, ctc_greedy_decode, ctc_prefix_beam_search

BLANK = 0


def frames_choosing(paths: list[list[int]], vocab: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities whose argmax follows each path; -1 marks a padding frame (its argmax is label 4)."""
    length = max(len(path) for path in paths)
    scores = torch.zeros(len(paths), length, vocab)
    mask = torch.zeros(len(paths), length, dtype=torch.bool)
    for row, path in enumerate(paths):
        for t in range(length):
            chosen = path[t] if t < len(path) and path[t] >= 0 else 4
            scores[row, t, chosen] = 5.0
            mask[row, t] = t < len(path) and path[t] >= 0
    return scores.log_softmax(dim=-1), mask


def collapse(path: list[int]) -> tuple[int, ...]:
    """The CTC many-to-one map: merge repeats, then drop blanks (the obviously-correct loop)."""
    labels, previous = [], None
    for symbol in path:
        if symbol != previous and symbol != BLANK:
            labels.append(symbol)
        previous = symbol
    return tuple(labels)


def test_greedy_collapses_repeats_keeps_blank_separated_repeats_and_ignores_padding():
    log_probs, mask = frames_choosing([[1, 1, 0, 1, 2, 2, 0], [3, 3, 3, -1, -1, -1, -1], [0, 2, 2, 0, 0, -1, -1]])
    assert ctc_greedy_decode(log_probs, mask) == [[1, 1, 2], [3], [2]]


def test_greedy_agrees_with_a_loop_on_random_frames():
    generator = torch.Generator().manual_seed(0)
    log_probs = torch.randn(4, 9, 3, generator=generator).log_softmax(dim=-1)
    lengths = [9, 5, 1, 7]
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]
    expected = [list(collapse(log_probs[b, :n].argmax(-1).tolist())) for b, n in enumerate(lengths)]
    assert ctc_greedy_decode(log_probs, mask) == expected


def test_greedy_with_another_blank_id():
    log_probs, mask = frames_choosing([[2, 1, 2, 2, 3]])
    assert ctc_greedy_decode(log_probs, mask, blank=2) == [[1, 3]]


def labeling_probabilities(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """p(l | x) for every labeling, by summing over all frame paths."""
    probabilities: dict[tuple[int, ...], float] = {}
    frames, vocab = log_probs.shape
    for path in itertools.product(range(vocab), repeat=frames):
        p = math.exp(sum(log_probs[t, symbol].item() for t, symbol in enumerate(path)))
        probabilities[collapse(list(path))] = probabilities.get(collapse(list(path)), 0.0) + p
    return probabilities


def test_prefix_beam_beats_greedy_when_the_best_path_is_not_the_best_labeling():
    # Each frame: blank 0.6, label 1 0.4. Best path "_ _" → [] (0.36); [1] has 0.4·0.4 + 2·0.6·0.4 = 0.64.
    log_probs = torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]).log()
    mask = torch.ones(1, 2, dtype=torch.bool)
    greedy = ctc_greedy_decode(log_probs, mask)[0]
    best = ctc_prefix_beam_search(log_probs, mask, beam_size=3)[0][0]
    assert greedy == []
    assert best.tokens == [1]
    assert best.score == pytest.approx(math.log(0.64))
    assert best.score > math.log(labeling_probabilities(log_probs[0])[tuple(greedy)])


def test_wide_prefix_beam_gives_exact_labeling_probabilities():
    generator = torch.Generator().manual_seed(1)
    log_probs = (torch.randn(1, 4, 3, generator=generator, dtype=torch.float64) * 2).log_softmax(dim=-1)
    exact = sorted(labeling_probabilities(log_probs[0]).items(), key=lambda item: item[1], reverse=True)
    hypotheses = ctc_prefix_beam_search(log_probs, torch.ones(1, 4, dtype=torch.bool), beam_size=31)[0]
    assert [tuple(h.tokens) for h in hypotheses[:6]] == [labels for labels, _ in exact[:6]]
    assert [h.score for h in hypotheses[:6]] == pytest.approx([math.log(p) for _, p in exact[:6]], abs=1e-9)
    scores = [h.score for h in hypotheses]
    assert scores == sorted(scores, reverse=True)


def test_prefix_beam_ignores_padding():
    generator = torch.Generator().manual_seed(2)
    log_probs = torch.randn(2, 6, 4, generator=generator).log_softmax(dim=-1)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    batched = ctc_prefix_beam_search(log_probs, mask, beam_size=4)
    alone = ctc_prefix_beam_search(log_probs[1:, :3], mask[1:, :3], beam_size=4)
    assert batched[1] == alone[0]
    assert len(batched[0]) == 4


def test_invalid_arguments_raise():
    log_probs, mask = frames_choosing([[1, 2]])
    with pytest.raises(ValueError, match="beam_size"):
        ctc_prefix_beam_search(log_probs, mask, beam_size=0)
    with pytest.raises(ValueError, match=r"log_probs must have shape \(B, T, V\)"):
        ctc_greedy_decode(log_probs[0], mask)
    with pytest.raises(ValueError, match=r"mask must be a bool mask of shape \(B, T\)"):
        ctc_greedy_decode(log_probs, mask[:, :1])


def test_collapse_of_labels_agrees_with_the_loop():
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (6, 9), generator=generator)
    lengths = [9, 0, 4, 7, 1, 9]
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]
    expected = [list(collapse(row[:length].tolist())) for row, length in zip(labels, lengths, strict=True)]
    assert ctc_collapse(labels, mask, blank=BLANK) == expected


def test_collapse_refuses_labels_and_mask_of_different_shapes():
    labels = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"labels \(B, T\) and a bool mask of the same shape"):
        ctc_collapse(labels, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"labels \(B, T\)"):
        ctc_collapse(labels, torch.ones(2, 3))
