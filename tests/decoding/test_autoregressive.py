import itertools
import math
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F

from sandglass.decoding.autoregressive import beam_search, greedy_search, next_token_log_probs, next_tokens
from sandglass.models.transformer import Transformer

PAD, UNK, BOS, EOS, A, B = range(6)


def random_model(vocab: int = 9, seed: int = 0, max_length: int = 64) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(
        vocab,
        d_model=8,
        num_heads=2,
        encoder_layers=1,
        decoder_layers=2,
        ffn_dim=16,
        dropout=0.0,
        max_length=max_length,
        tie_embeddings=False,
    )
    # Larger output weights keep the untrained model far from ties and its outputs of varied lengths.
    with torch.no_grad():
        model.output_projection.weight.mul_(3.0)
    return model.double().eval()


def token_batch(lengths: list[int], vocab: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=generator)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, PAD), mask


@dataclass
class PrefixCache:
    prefixes: list[tuple[int, ...]] = field(default_factory=list)

    def reorder(self, indices: torch.Tensor) -> None:
        self.prefixes = [self.prefixes[i] for i in indices.tolist()]


class TableModel:
    """A stub with the search interface whose next-token probabilities are a fixed table of the prefix.

    Greedy takes ``a`` (0.55) and then ends (0.4): p = 0.22. Beam search finds ``b``, eos: 0.44 · 0.9 = 0.396.
    """

    pad_id, bos_id, eos_id, max_length = PAD, BOS, EOS, 50
    table = {
        (): {A: 0.55, B: 0.44, EOS: 0.01},
        (A,): {EOS: 0.4, A: 0.3, B: 0.3},
        (B,): {EOS: 0.9, A: 0.05, B: 0.05},
    }
    default = {EOS: 0.98, A: 0.01, B: 0.01}

    def encode(self, src, src_mask):
        return torch.zeros(*src.shape, 1)

    def new_cache(self) -> PrefixCache:
        return PrefixCache()

    def decode_step(self, tokens, memory, src_mask, cache):
        if not cache.prefixes:
            cache.prefixes = [() for _ in tokens.tolist()]
        else:
            cache.prefixes = [prefix + (token,) for prefix, token in zip(cache.prefixes, tokens.tolist(), strict=True)]
        logits = torch.full((len(tokens), 6), -math.inf, dtype=torch.float64)
        for row, prefix in enumerate(cache.prefixes):
            for token, probability in self.table.get(prefix, self.default).items():
                logits[row, token] = math.log(probability)
        return logits


def test_beam_finds_the_better_sequence_that_greedy_misses():
    src, src_mask = torch.full((2, 3), A), torch.ones(2, 3, dtype=torch.bool)
    greedy = greedy_search(TableModel(), src, src_mask)
    beam = beam_search(TableModel(), src, src_mask, beam_size=2, length_penalty=0.0, n_best=2)
    assert greedy.best == [[A], [A]]
    assert greedy.hypotheses[0][0].score == pytest.approx(math.log(0.55 * 0.4))
    assert beam.best == [[B], [B]]
    assert [h.tokens for h in beam.hypotheses[0]] == [[B], [A]]
    assert [h.score for h in beam.hypotheses[0]] == pytest.approx([math.log(0.44 * 0.9), math.log(0.55 * 0.4)])


def test_length_penalty_divides_by_length_including_eos():
    src, src_mask = torch.full((1, 3), A), torch.ones(1, 3, dtype=torch.bool)
    beam = beam_search(TableModel(), src, src_mask, beam_size=2, length_penalty=1.0)
    assert beam.hypotheses[0][0].score == pytest.approx(math.log(0.44 * 0.9) / 2)


def test_beam_size_one_equals_greedy():
    model = random_model()
    src, src_mask = token_batch([5, 3, 6, 2])
    greedy = greedy_search(model, src, src_mask)
    beam = beam_search(model, src, src_mask, beam_size=1, length_penalty=0.0)
    assert beam.best == greedy.best
    for beam_hyps, greedy_hyps in zip(beam.hypotheses, greedy.hypotheses, strict=True):
        assert beam_hyps[0].score == pytest.approx(greedy_hyps[0].score, abs=1e-9)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_sentence_decodes_identically_alone_and_in_a_padded_batch(search):
    model = random_model(seed=0)
    lengths = [6, 2, 4]
    src, src_mask = token_batch(lengths, seed=1)

    def run(tokens, mask):
        if search == "greedy":
            return greedy_search(model, tokens, mask)
        return beam_search(model, tokens, mask, beam_size=3, n_best=3)

    batched = run(src, src_mask)
    for index, length in enumerate(lengths):
        alone = run(src[index : index + 1, :length], src_mask[index : index + 1, :length])
        assert [h.tokens for h in alone.hypotheses[0]] == [h.tokens for h in batched.hypotheses[index]]
        assert [h.score for h in alone.hypotheses[0]] == pytest.approx([h.score for h in batched.hypotheses[index]])


def test_n_best_sorted_distinct_and_within_the_length_limit():
    model = random_model(seed=2)
    src, src_mask = token_batch([4, 2], seed=2)
    result = beam_search(model, src, src_mask, beam_size=4, n_best=4, max_length_a=0.5, max_length_b=2)
    for hypotheses, length in zip(result.hypotheses, [4, 2], strict=True):
        assert len(hypotheses) == 4
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hypotheses}) == 4
        assert all(len(h.tokens) <= math.floor(0.5 * length + 2) for h in hypotheses)
        assert all(PAD not in h.tokens and BOS not in h.tokens and EOS not in h.tokens for h in hypotheses)


def exhaustive_best(model: Transformer, src: torch.Tensor, limit: int, length_penalty: float, count: int):
    """Score every possible output (tokens other than pad/bos/eos, up to ``limit`` of them) with the
    teacher-forced model and return the ``count`` best as (tokens, score)."""
    src_mask = torch.ones_like(src, dtype=torch.bool)
    labels = [v for v in range(model.vocab_size) if v not in (PAD, BOS, EOS)]
    scored = []
    for length in range(limit + 1):
        for tokens in itertools.product(labels, repeat=length):
            tgt_in = torch.tensor([[BOS, *tokens]])
            log_probs = F.log_softmax(model(src, src_mask, tgt_in)[0], dim=-1)
            total = sum(log_probs[t, token].item() for t, token in enumerate(tokens)) + log_probs[length, EOS].item()
            scored.append((list(tokens), total / (length + 1) ** length_penalty))
    return sorted(scored, key=lambda item: item[1], reverse=True)[:count]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_agrees_with_exhaustive_search(length_penalty):
    model = random_model(vocab=6, seed=3)
    src = torch.tensor([[4, 5, 4]])
    limit = 3  # floor(0 · 3 + 3) output tokens at most; 1 + 3 + 9 + 27 = 40 possible outputs
    expected = exhaustive_best(model, src, limit, length_penalty, count=5)
    result = beam_search(
        model,
        src,
        torch.ones_like(src, dtype=torch.bool),
        beam_size=40,
        n_best=5,
        length_penalty=length_penalty,
        max_length_a=0.0,
        max_length_b=limit,
    )
    assert [h.tokens for h in result.hypotheses[0]] == [tokens for tokens, _ in expected]
    assert [h.score for h in result.hypotheses[0]] == pytest.approx([score for _, score in expected], abs=1e-9)


def test_output_length_is_capped_by_the_model():
    model = random_model(seed=4, max_length=4)
    src, src_mask = token_batch([3, 3], seed=4)
    for result in [greedy_search(model, src, src_mask), beam_search(model, src, src_mask, beam_size=2)]:
        assert all(len(h.tokens) <= 3 for hypotheses in result.hypotheses for h in hypotheses)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        (dict(beam_size=0), "beam_size"),
        (dict(beam_size=2, n_best=3), "n_best"),
        (dict(n_best=0), "n_best"),
        (dict(max_length_a=-1.0), "max_length_a"),
    ],
)
def test_invalid_settings_raise(settings, name):
    src, src_mask = token_batch([3])
    with pytest.raises(ValueError, match=name):
        beam_search(random_model(), src, src_mask, **settings)


class FixedLogits:
    """A stub whose every decoding step gives the same logits."""

    pad_id, bos_id, eos_id, max_length = PAD, BOS, EOS, 50

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits

    def decode_step(self, tokens, memory, src_mask, cache):
        return self.logits.clone()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_next_tokens_are_the_argmax_of_next_token_log_probs(dtype):
    logits = torch.randn(5, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    logits[1, PAD] = logits[1, BOS] = 50.0  # never produced, however likely
    logits[3, [7, 9]] = 20.0  # a tie: the first wins
    logits = logits.to(dtype)
    model = FixedLogits(logits)
    limits = torch.tensor([5, 5, 2, 5, 0])  # rows 2 and 4 have reached their limit at step 2: only eos
    best = next_tokens(logits.clone(), model, 2, limits)
    reference = next_token_log_probs(model, torch.zeros(5, dtype=torch.long), None, None, None, 2, limits)
    expected_log_probs, expected_tokens = reference.max(dim=-1)
    assert torch.equal(best.tokens, expected_tokens)
    assert best.tokens[2:].tolist() == [EOS, 7, EOS]
    assert best.tokens[1] not in (PAD, BOS)
    assert best.log_probs.dtype == torch.float64
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(best.log_probs, expected_log_probs, atol=tolerance, rtol=0)
