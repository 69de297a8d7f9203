import math

import pytest
import torch
import torch.nn.functional as F

from sandglass.decoding.autoregressive import greedy_search
from sandglass.loss import label_smoothed_cross_entropy
from sandglass.models.transformer import Transformer, sinusoidal_positions
from tests.layers.properties import assert_gradcheck

VOCAB = 11


def tiny_model(dtype: torch.dtype = torch.float64, seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    settings = dict(d_model=8, num_heads=2, encoder_layers=2, decoder_layers=2, ffn_dim=16, dropout=0.0)
    settings.update(overrides)
    return Transformer(VOCAB, **settings).to(dtype).eval()


def token_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random real tokens (ids 4..V-1), right-padded with pad id 0."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, VOCAB, (len(lengths), max(lengths)), generator=generator)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, 0), mask


# A direct, slow transcription of the model's equations for one unpadded sentence.


def slow_linear(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return x @ layer.weight.T + layer.bias


def slow_attention(attention, queries_from: torch.Tensor, keys_from: torch.Tensor, causal: bool) -> torch.Tensor:
    q, k, v = (
        slow_linear(attention.query, queries_from),
        slow_linear(attention.key, keys_from),
        slow_linear(attention.value, keys_from),
    )
    heads, width = attention.num_heads, q.shape[1] // attention.num_heads
    out = torch.zeros_like(q)
    for h in range(heads):
        part = slice(h * width, (h + 1) * width)
        for i in range(q.shape[0]):
            visible = range(i + 1) if causal else range(k.shape[0])
            scores = torch.stack([q[i, part] @ k[j, part] / math.sqrt(width) for j in visible])
            weights = torch.softmax(scores, dim=0)
            out[i, part] = sum(w * v[j, part] for w, j in zip(weights, visible, strict=True))
    return slow_linear(attention.output, out)


def slow_embed(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    d, half = model.d_model, model.d_model // 2
    rows = []
    for t, token in enumerate(tokens.tolist()):
        position = [math.sin(t * 10000 ** (-i / (half - 1))) for i in range(half)]
        position += [math.cos(t * 10000 ** (-i / (half - 1))) for i in range(half)]
        rows.append(model.embedding.weight[token] * math.sqrt(d) + torch.tensor(position, dtype=torch.float64))
    return torch.stack(rows)


def slow_ffn(ffn, x: torch.Tensor) -> torch.Tensor:
    return slow_linear(ffn[3], torch.relu(slow_linear(ffn[0], x)))


def slow_logits(model: Transformer, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
    x = slow_embed(model, src)
    for layer in model.encoder:
        normed = layer.self_attention_norm(x)
        x = x + slow_attention(layer.self_attention, normed, normed, causal=False)
        x = x + slow_ffn(layer.ffn, layer.ffn_norm(x))
    memory = model.encoder_norm(x)
    y = slow_embed(model, tgt_in)
    for layer in model.decoder:
        normed = layer.self_attention_norm(y)
        y = y + slow_attention(layer.self_attention, normed, normed, causal=True)
        y = y + slow_attention(layer.cross_attention, layer.cross_attention_norm(y), memory, causal=False)
        y = y + slow_ffn(layer.ffn, layer.ffn_norm(y))
    return model.decoder_norm(y) @ model.embedding.weight.T


def test_forward_matches_slow_loop_on_each_padded_sentence():
    model = tiny_model()
    src, src_mask = token_batch([5, 3, 4])
    tgt_in, _ = token_batch([4, 4, 4], seed=1)
    logits = model(src, src_mask, tgt_in)
    for index, length in enumerate([5, 3, 4]):
        expected = slow_logits(model, src[index, :length], tgt_in[index])
        torch.testing.assert_close(logits[index], expected, atol=1e-5, rtol=0)


def test_output_shapes_and_zeroed_memory_padding():
    model = tiny_model()
    src, src_mask = token_batch([6, 2])
    tgt_in, _ = token_batch([3, 3], seed=2)
    memory = model.encode(src, src_mask)
    assert memory.shape == (2, 6, 8)
    assert model(src, src_mask, tgt_in).shape == (2, 3, VOCAB)
    assert torch.all(memory[1, 2:] == 0)


def test_sentence_gives_same_logits_alone_and_padded():
    model = tiny_model()
    src, src_mask = token_batch([7, 2, 5])
    tgt_in, _ = token_batch([6, 6, 6], seed=3)
    batched = model(src, src_mask, tgt_in)
    for index, length in enumerate([7, 2, 5]):
        alone = model(
            src[index : index + 1, :length],
            src_mask[index : index + 1, :length],
            tgt_in[index : index + 1, :4],
        )
        torch.testing.assert_close(batched[index, :4], alone[0], atol=1e-10, rtol=0)


def test_decoder_is_causal():
    model = tiny_model()
    src, src_mask = token_batch([4, 3])
    tgt_in, _ = token_batch([6, 6], seed=4)
    base = model(src, src_mask, tgt_in)
    for position in range(1, 6):
        changed = tgt_in.clone()
        changed[:, position:] = (changed[:, position:] + 1 - 4) % (VOCAB - 4) + 4
        out = model(src, src_mask, changed)
        torch.testing.assert_close(out[:, :position], base[:, :position], atol=1e-12, rtol=0)
        assert not torch.allclose(out[:, position:], base[:, position:])


def test_decode_step_with_cache_matches_forward():
    model = tiny_model(torch.float32)
    src, src_mask = token_batch([6, 3, 5])
    tgt_in, _ = token_batch([5, 5, 5], seed=5)
    full = model(src, src_mask, tgt_in)
    memory, cache = model.encode(src, src_mask), model.new_cache()
    steps = torch.stack([model.decode_step(tgt_in[:, t], memory, src_mask, cache) for t in range(5)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)
    assert cache.length == 5
    assert cache.layers[0].self_keys.shape == (3, 2, 5, 4)
    assert cache.layers[0].cross_keys.shape == (3, 2, 6, 4)


def test_decode_step_projects_each_position_once_and_the_memory_once():
    model = tiny_model()
    src, src_mask = token_batch([4, 2])
    memory, cache = model.encode(src, src_mask), model.new_cache()
    self_lengths, cross_calls = [], []
    layer = model.decoder[1]
    layer.self_attention.key.register_forward_hook(lambda m, args, out: self_lengths.append(args[0].shape[1]))
    layer.cross_attention.key.register_forward_hook(lambda m, args, out: cross_calls.append(args[0].shape[1]))
    for token in [2, 5, 6, 7]:
        model.decode_step(torch.tensor([token, token]), memory, src_mask, cache)
    assert self_lengths == [1, 1, 1, 1]
    assert cross_calls == [4]


def test_cache_reorder_follows_the_chosen_rows():
    model = tiny_model()
    src, src_mask = token_batch([4, 4])
    tgt_in, _ = token_batch([3, 3], seed=6)
    memory, cache = model.encode(src, src_mask), model.new_cache()
    for t in range(2):
        model.decode_step(tgt_in[:, t], memory, src_mask, cache)
    order = torch.tensor([1, 1, 0])
    cache.reorder(order)
    stepped = model.decode_step(tgt_in[order, 2], memory[order], src_mask[order], cache)
    expected = model(src[order], src_mask[order], tgt_in[order])[:, 2]
    torch.testing.assert_close(stepped, expected, atol=1e-10, rtol=0)


def test_gradcheck_float64():
    model = tiny_model(d_model=4, encoder_layers=1, decoder_layers=1, ffn_dim=4)
    src, src_mask = token_batch([3, 2])
    tgt_in, _ = token_batch([2, 2], seed=7)
    assert_gradcheck(model, src, src_mask, tgt_in)


def test_untied_output_projection():
    model = tiny_model(tie_embeddings=False)
    src, src_mask = token_batch([3])
    assert model.output_projection is not None
    assert model(src, src_mask, src).shape == (1, 3, VOCAB)


def test_sinusoidal_positions_formula():
    table = sinusoidal_positions(5, 6)
    assert table.shape == (5, 6)
    assert table[3, 1] == pytest.approx(math.sin(3 * 10000 ** (-1 / 2)), abs=1e-6)
    assert table[3, 4] == pytest.approx(math.cos(3 * 10000 ** (-1 / 2)), abs=1e-6)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        (dict(vocab_size=0), "vocab_size"),
        (dict(d_model=10, num_heads=4), "d_model"),
        (dict(encoder_layers=0), "encoder_layers"),
        (dict(ffn_dim=-1), "ffn_dim"),
        (dict(dropout=1.0), "dropout"),
        (dict(max_length=0), "max_length"),
        (dict(bos_id=VOCAB), "bos_id"),
    ],
)
def test_invalid_settings_raise(settings, name):
    arguments = dict(vocab_size=VOCAB, d_model=8, num_heads=2)
    arguments.update(settings)
    with pytest.raises(ValueError, match=name):
        Transformer(arguments.pop("vocab_size"), **arguments)


def test_invalid_inputs_raise():
    model = tiny_model(max_length=6)
    src, src_mask = token_batch([4, 3])
    with pytest.raises(ValueError, match=r"src must be integer token ids of shape \(B, L\)"):
        model.encode(src.double(), src_mask)
    with pytest.raises(ValueError, match=r"src must be .* shape \(B, L\)"):
        model.encode(src[0], src_mask[0])
    with pytest.raises(ValueError, match=r"src_mask .* \(B, L\)"):
        model.encode(src, src_mask[:, :2])
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        model.decode(src, torch.zeros(2, 4, 5), src_mask)
    with pytest.raises(ValueError, match="max_length"):
        model.encode(*token_batch([7]))
    with pytest.raises(ValueError, match=r"tokens of shape \(B,\)"):
        model.decode_step(src, model.encode(src, src_mask), src_mask, model.new_cache())


def test_tiny_transformer_learns_to_copy_and_greedy_decodes_exactly():
    torch.manual_seed(0)
    model = Transformer(VOCAB, d_model=32, num_heads=2, encoder_layers=1, decoder_layers=1, ffn_dim=64, dropout=0.0)
    src, src_mask = token_batch([3, 5, 4, 4, 2, 5], seed=8)
    lengths = src_mask.sum(dim=1)
    bos = torch.full((6, 1), model.bos_id)
    tgt_in = torch.cat([bos, src], dim=1)
    target = torch.cat([src, torch.zeros(6, 1, dtype=torch.long)], dim=1)
    target[torch.arange(6), lengths] = model.eos_id
    target_mask = torch.arange(6)[None, :] <= lengths[:, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = label_smoothed_cross_entropy(model(src, src_mask, tgt_in), target, target_mask, smoothing=0.0).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    decoded = greedy_search(model, src, src_mask).best
    assert decoded == [row[:length] for row, length in zip(src.tolist(), lengths.tolist(), strict=True)]
    assert F.softmax(model(src, src_mask, tgt_in), dim=-1).max(dim=-1).values[target_mask].min() > 0.5
