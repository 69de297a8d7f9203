import pytest
import torch
from torch import nn

from sandglass.config import OriginalConfig
from sandglass.data.batching import collate
from sandglass.inference import generate
from sandglass.layers.batch_norm import MaskedBatchNorm1d
from sandglass.layers.conv import Conv
from sandglass.layers.expand_conv import ExpandConv
from sandglass.layers.reduce_conv import ReduceConv
from sandglass.layers.reverse_conv import ReverseConv
from sandglass.models.original import NormTanh, OriginalSandGlass
from sandglass.objective import compute_loss

VOCAB = 12
LENGTH = 8
CONV_LAYERS = (Conv, ReduceConv, ExpandConv, ReverseConv)


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_config(**overrides) -> OriginalConfig:
    settings = dict(
        sequence_length=LENGTH, d_model=8, kernel_sizes=(4, 1), reduce_factors=(2, 2), key_channels=4, center_hidden=16
    )
    settings.update(overrides)
    return OriginalConfig(**settings)


def tiny_model(seed: int = 0, **overrides) -> OriginalSandGlass:
    torch.manual_seed(seed)
    return OriginalSandGlass(VOCAB, tiny_config(**overrides))


def random_tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("source_length", [3, LENGTH, LENGTH + 5])
def test_logits_have_the_fixed_length(source_length):
    model = tiny_model()
    logits = model(random_tokens(3, source_length))
    assert logits.shape == (3, LENGTH, VOCAB)
    assert torch.isfinite(logits).all()


def test_fit_length_pads_with_the_pad_id_or_cuts():
    model = OriginalSandGlass(VOCAB, tiny_config(), pad_id=5)
    short = torch.tensor([[7, 8, 9], [4, 4, 4]])
    assert torch.equal(model.fit_length(short), torch.tensor([[7, 8, 9] + [5] * 5, [4, 4, 4] + [5] * 5]))
    long = torch.arange(11)[None, :]
    assert torch.equal(model.fit_length(long), torch.arange(LENGTH)[None, :])
    exact = random_tokens(2, LENGTH)
    assert torch.equal(model.fit_length(exact), exact)


def test_predict_cuts_at_the_first_pad(monkeypatch):
    model = tiny_model()
    rows = [[5, 6, 0, 7, 0, 0, 0, 0], [4, 5, 6, 7, 8, 9, 10, 11], [0, 5, 5, 5, 5, 5, 5, 5]]
    logits = torch.nn.functional.one_hot(torch.tensor(rows), VOCAB).double()
    monkeypatch.setattr(model, "forward", lambda src: logits)
    assert model.predict(random_tokens(3, 4)) == [[5, 6], rows[1], []]


def test_sequence_length_must_divide_by_the_reduce_factors():
    with pytest.raises(ValueError, match="sequence_length"):
        tiny_model(sequence_length=10, reduce_factors=(2, 2))
    with pytest.raises(ValueError, match="sequence_length"):
        tiny_model(sequence_length=0)
    tiny_model(sequence_length=12, reduce_factors=(2, 3))


def test_channels_must_divide_by_the_number_of_banks():
    with pytest.raises(ValueError, match="d_model \\+ key_channels"):
        tiny_model(d_model=8, key_channels=3, kernel_sizes=(4, 1))


def test_every_conv_is_followed_by_batch_norm_and_tanh():
    model = tiny_model()
    convs = [module for module in model.modules() if isinstance(module, CONV_LAYERS)]
    wrapped = [module for module in model.modules() if isinstance(module, NormTanh)]
    assert len(convs) == 4 * len(model.config.reduce_factors)
    assert sorted(map(id, convs)) == sorted(id(unit.layer) for unit in wrapped)
    widths = {}
    for unit in wrapped:
        assert isinstance(unit.norm, MaskedBatchNorm1d)
        unit.layer.register_forward_hook(lambda module, args, out, unit=unit: widths.update({unit: out}))
    model(random_tokens(2, LENGTH))
    for unit, out in widths.items():
        out = out[0] if isinstance(out, tuple) else out
        assert out.shape[-1] == unit.norm.num_features
    assert len(widths) == len(wrapped)


@pytest.mark.parametrize("training", [True, False])
def test_tanh_outputs_lie_in_minus_one_one(training):
    model = tiny_model().train(training)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(10)  # large pre-activations: only the squashing keeps outputs bounded
    outputs = []
    for module in model.modules():
        if isinstance(module, NormTanh | nn.Tanh):
            module.register_forward_hook(lambda module, args, out: outputs.append(out))
    model(random_tokens(4, LENGTH))
    assert len(outputs) == 4 * len(model.config.reduce_factors) + 2
    for out in outputs:
        assert out.abs().max() <= 1.0
    assert max(out.abs().max() for out in outputs) > 0.99


def test_in_eval_mode_a_sentence_is_predicted_the_same_alone_and_in_a_batch():
    model = tiny_model().double()
    model.train()
    model(random_tokens(4, LENGTH, seed=1))  # move the running statistics away from their start
    model.eval()
    src = random_tokens(3, 6, seed=2)
    batched = model(src)
    for index in range(3):
        torch.testing.assert_close(model(src[index : index + 1])[0], batched[index], atol=1e-10, rtol=0)


def test_it_learns_to_reverse_a_handful_of_sentences():
    sources = [[4, 5, 6], [7, 8, 9, 10], [11, 4, 8], [6, 6, 9, 5, 7], [10, 11]]
    targets = [source[::-1] for source in sources]
    batch = collate(sources, targets, pad_id=0)
    model = tiny_model(d_model=16, key_channels=8, center_hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=7e-3)
    for step in range(300):
        model.train()
        loss = compute_loss(model, batch).loss
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 10 == 9 and generate(model.eval(), batch.src, batch.src_mask) == targets:
            break
    assert generate(model.eval(), batch.src, batch.src_mask) == targets
