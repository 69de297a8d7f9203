import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sandglass.config import OriginalConfig, SandGlassConfig
from sandglass.data.batching import Batch, collate
from sandglass.models.original import OriginalSandGlass
from sandglass.models.sandglass import SandGlass
from sandglass.models.transformer import Transformer
from sandglass.objective import compute_loss, teacher_forcing_pair

VOCAB = 14
PAD, BOS, EOS = 0, 2, 3


pytestmark = pytest.mark.usefixtures("single_thread")


def make_model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch == "transformer":
        model = Transformer(VOCAB, d_model=8, num_heads=2, encoder_layers=1, decoder_layers=1, ffn_dim=16, dropout=0.0)
    elif arch == "sandglass":
        settings = dict(d_model=8, encoder="C", blocks_per_stage=1, center="T", output="", num_heads=2)
        config = SandGlassConfig(**settings, mirror_key_dim=4, max_distance=16, dropout=0.0, max_length=32)
        model = SandGlass(VOCAB, config)
    else:
        config = OriginalConfig(sequence_length=8, d_model=8, key_channels=4, center_hidden=16)
        model = OriginalSandGlass(VOCAB, config)
    return model.double()


def pair_batch() -> Batch:
    sources = [[4, 5, 6, 7], [8, 9], [10, 11, 12]]
    targets = [[5, 6, 7], [9, 10, 11, 12], [4]]
    return collate(sources, targets, pad_id=PAD)


def test_teacher_forcing_pair_on_a_hand_made_batch():
    tgt = torch.tensor([[5, 6, 7], [8, 0, 0], [9, 10, 0]])
    tgt_mask = tgt != 0
    tgt_in, tgt_out, out_mask = teacher_forcing_pair(tgt, tgt_mask, bos_id=BOS, eos_id=EOS, pad_id=PAD)
    assert torch.equal(tgt_in, torch.tensor([[2, 5, 6, 7], [2, 8, 0, 0], [2, 9, 10, 0]]))
    assert torch.equal(tgt_out, torch.tensor([[5, 6, 7, 3], [8, 3, 0, 0], [9, 10, 3, 0]]))
    expected_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(out_mask, expected_mask)
    assert tgt_in.dtype == tgt_out.dtype == tgt.dtype and out_mask.dtype == torch.bool


def test_teacher_forcing_pair_uses_the_given_ids():
    tgt = torch.tensor([[5, 1]])
    tgt_in, tgt_out, _ = teacher_forcing_pair(tgt, tgt == 5, bos_id=7, eos_id=8, pad_id=1)
    assert tgt_in.tolist() == [[7, 5, 1]]
    assert tgt_out.tolist() == [[5, 8, 1]]


@pytest.mark.parametrize("arch", ["transformer", "sandglass", "original"])
def test_loss_is_finite_and_differentiable(arch):
    model = make_model(arch).train()
    output = compute_loss(model, pair_batch())
    assert output.loss.dim() == 0 and torch.isfinite(output.loss) and output.loss > 0
    output.loss.backward()
    grads = [param.grad for param in model.parameters()]
    assert all(grad is not None and torch.isfinite(grad).all() for grad in grads)
    assert sum(grad.abs().sum() for grad in grads) > 0


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_transformer_loss_is_cross_entropy_over_real_positions(smoothing):
    model = make_model("transformer").eval()
    batch = pair_batch()
    tgt_in = torch.tensor([[2, 5, 6, 7, 0], [2, 9, 10, 11, 12], [2, 4, 0, 0, 0]])
    tgt_out = torch.tensor([[5, 6, 7, 3, 0], [9, 10, 11, 12, 3], [4, 3, 0, 0, 0]])
    real = torch.tensor([4, 5, 2])[:, None] > torch.arange(5)[None, :]
    logits = model(batch.src, batch.src_mask, tgt_in)
    expected = F.cross_entropy(logits[real], tgt_out[real], label_smoothing=smoothing)
    output = compute_loss(model, batch, label_smoothing=smoothing)
    torch.testing.assert_close(output.loss, expected, atol=1e-10, rtol=0)
    assert output.num_tokens == 11


def test_sandglass_loss_is_ctc_over_its_output_per_target_token():
    model = make_model("sandglass").eval()
    batch = pair_batch()
    output = model(batch.src, batch.src_mask)
    expected = F.ctc_loss(
        output.log_probs.transpose(0, 1),
        batch.tgt,
        torch.tensor([8, 4, 6]),
        torch.tensor([3, 4, 1]),
        blank=model.blank_id,
        reduction="sum",
    )
    assert torch.isfinite(expected)
    loss = compute_loss(model, batch)
    torch.testing.assert_close(loss.loss, expected / 8, atol=1e-6, rtol=1e-6)
    assert loss.num_tokens == 8


def test_original_loss_covers_every_position_of_the_padded_target():
    model = make_model("original").eval()
    batch = pair_batch()
    target = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0], [9, 10, 11, 12, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0, 0, 0]])
    logits = model(batch.src)
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
    loss = compute_loss(model, batch)
    torch.testing.assert_close(loss.loss, expected, atol=1e-10, rtol=0)
    assert loss.num_tokens == 24


def test_an_unknown_model_is_a_type_error():
    with pytest.raises(TypeError, match="Linear"):
        compute_loss(nn.Linear(2, 2), pair_batch())
