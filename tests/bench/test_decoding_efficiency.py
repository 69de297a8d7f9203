"""The speed claims rest on two properties: CTC greedy decoding has no Python loop over positions, and the
Transformer's searches feed one new position per step through the key/value cache (no prefix recomputation)."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from sandglass.decoding import beam_search, ctc_greedy_decode, greedy_search
from sandglass.models.transformer import Transformer


class CountTorchCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def ctc_greedy_torch_calls(frames: int) -> int:
    log_probs = torch.randn(3, frames, 7, generator=torch.Generator().manual_seed(frames)).log_softmax(-1)
    mask = torch.ones(3, frames, dtype=torch.bool)
    mask[1, frames // 2 :] = False
    with CountTorchCalls() as counter:
        ctc_greedy_decode(log_probs, mask, blank=0)
    return counter.calls


def test_ctc_greedy_decoding_does_the_same_tensor_work_for_any_length():
    assert ctc_greedy_torch_calls(4) == ctc_greedy_torch_calls(40) == ctc_greedy_torch_calls(400)


def tiny_transformer() -> Transformer:
    torch.manual_seed(0)
    return Transformer(13, d_model=16, num_heads=2, encoder_layers=1, decoder_layers=2, ffn_dim=32, dropout=0.0).eval()


@pytest.mark.parametrize("search", [greedy_search, lambda *args: beam_search(*args, beam_size=3)])
def test_transformer_search_feeds_one_position_per_step_and_never_the_whole_prefix(monkeypatch, search):
    model = tiny_transformer()
    src = torch.randint(4, 13, (2, 6))
    src_mask = torch.ones_like(src, dtype=torch.bool)

    def refuse(*args, **kwargs):
        raise AssertionError("the search ran the decoder over a whole prefix")

    monkeypatch.setattr(model, "decode", refuse)
    monkeypatch.setattr(model, "forward", refuse)
    fed, cached = [], []
    layer = model.decoder[1]
    layer.self_attention.key.register_forward_hook(lambda module, args, out: fed.append(args[0].shape[1]))
    original_step = layer.step

    def step(x, cache, allowed):
        cached.append(0 if cache.self_keys is None else cache.self_keys.shape[2])
        return original_step(x, cache, allowed)

    monkeypatch.setattr(layer, "step", step)
    search(model, src, src_mask)
    assert len(fed) > 3 and set(fed) == {1}  # one new position's keys per step
    assert cached == list(range(len(cached)))  # the cache grows by exactly one position per step
