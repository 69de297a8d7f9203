import pytest
import torch
from torch import nn

from sandglass.config import OriginalConfig, SandGlassConfig
from sandglass.decoding.autoregressive import beam_search, greedy_search
from sandglass.decoding.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from sandglass.inference import generate
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer

VOCAB = 14
PAD, BOS, EOS = 0, 2, 3
ARCHS = ["transformer", "sandglass", "original"]


pytestmark = pytest.mark.usefixtures("single_thread")


def make_model(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if arch == "transformer":
        model = Transformer(
            VOCAB, d_model=8, num_heads=2, encoder_layers=1, decoder_layers=1, ffn_dim=16, dropout=0.0, max_length=32
        )
    elif arch == "sandglass":
        settings = dict(d_model=8, encoder="C", blocks_per_stage=1, center="T", output="", num_heads=2)
        config = SandGlassConfig(**settings, mirror_key_dim=4, max_distance=16, dropout=0.0, max_length=32)
        model = SandGlass(VOCAB, config)
    else:
        model = OriginalSandGlass(VOCAB, OriginalConfig(sequence_length=8, d_model=8, key_channels=4, center_hidden=16))
    return model.eval()


def source_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, VOCAB, (len(lengths), max(lengths)), generator=generator)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, PAD), mask


@torch.no_grad()
def force_token(model: nn.Module, token: int) -> None:
    """Make ``token`` the most probable output at every position (the model's own search may still forbid it)."""
    if isinstance(model, OriginalSandGlass):
        model.output.weight.zero_()
        model.output.bias.zero_()
        model.output.bias[token] = 100.0
        return
    embedding, norm = (
        (model.embedding, model.decoder_norm) if isinstance(model, Transformer) else (model.embed, model.final_norm)
    )
    direction = torch.nn.functional.normalize(torch.randn(embedding.embedding_dim), dim=0)
    norm.weight.zero_()
    norm.bias.copy_(direction)  # the normalized output is this direction wherever it comes from
    embedding.weight[token] = 100.0 * direction  # tied output projection: logit_token = 100, others ≈ ±1


def frame_argmax(model: nn.Module, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
    if isinstance(model, Transformer):
        start = torch.full_like(src[:, :1], BOS)
        return model(src, src_mask, start).argmax(dim=-1)
    if isinstance(model, SandGlass):
        return model(src, src_mask).log_probs.argmax(dim=-1)
    return model(src).argmax(dim=-1)


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_gives_one_list_of_ids_per_sentence(arch):
    model = make_model(arch)
    src, src_mask = source_batch([5, 2, 7])
    outputs = generate(model, src, src_mask)
    assert len(outputs) == 3
    assert all(isinstance(output, list) and all(isinstance(token, int) for token in output) for output in outputs)
    assert all(0 <= token < VOCAB for output in outputs for token in output)


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_uses_the_decoder_of_each_architecture(arch):
    model = make_model(arch)
    src, src_mask = source_batch([5, 2, 7], seed=1)
    if arch == "transformer":
        expected = greedy_search(model, src, src_mask).best
    elif arch == "sandglass":
        output = model(src, src_mask)
        expected = ctc_greedy_decode(output.log_probs, output.mask, blank=model.blank_id)
    else:
        expected = model.predict(src)
    assert generate(model, src, src_mask) == expected


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("special", [PAD, BOS, EOS], ids=["pad", "bos", "eos"])
def test_generated_ids_hold_no_pad_bos_or_eos(arch, special):
    model = make_model(arch)
    force_token(model, special)
    src, src_mask = source_batch([5, 2, 7], seed=2)
    if arch == "sandglass" and special in (BOS, EOS):
        # SandGlass's output vocabulary excludes bos and eos: even pushed towards one, it gives it no probability.
        assert (model(src, src_mask).log_probs[..., special] < -1e6).all()
    else:
        assert (frame_argmax(model, src, src_mask) == special).all(), "the model was not forced"
    for beam_size in (1, 2) if arch != "original" else (1,):
        outputs = generate(model, src, src_mask, beam_size=beam_size)
        assert len(outputs) == 3
        assert all(special not in output for output in outputs), f"beam_size={beam_size}: {outputs}"


def test_beam_search_for_the_transformer():
    model = make_model("transformer")
    src, src_mask = source_batch([5, 2, 7], seed=3)
    outputs = generate(model, src, src_mask, beam_size=2, length_penalty=0.5)
    assert outputs == beam_search(model, src, src_mask, beam_size=2, length_penalty=0.5).best
    assert len(outputs) == 3


def test_prefix_beam_search_for_sandglass():
    model = make_model("sandglass")
    src, src_mask = source_batch([5, 2, 7], seed=4)
    outputs = generate(model, src, src_mask, beam_size=2)
    output = model(src, src_mask)
    beams = ctc_prefix_beam_search(output.log_probs, output.mask, blank=model.blank_id, beam_size=2)
    assert outputs == [hypotheses[0].tokens for hypotheses in beams]
    assert len(outputs) == 3 and all(model.blank_id not in tokens for tokens in outputs)


def test_an_unknown_model_is_a_type_error():
    src, src_mask = source_batch([3])
    with pytest.raises(TypeError, match="Linear"):
        generate(nn.Linear(2, 2), src, src_mask)
