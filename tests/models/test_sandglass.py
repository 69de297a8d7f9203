import pytest
import torch

from sandglass.config import SandGlassConfig
from sandglass.data.batching import collate
from sandglass.decoding.ctc import ctc_greedy_decode
from sandglass.inference import generate
from sandglass.layers import TransformerBlock
from sandglass.loss import ctc_loss
from sandglass.models.blocks import BlockStack
from sandglass.models.sandglass import SandGlass
from sandglass.objective import compute_loss

VOCAB = 13
# Every block letter appears at least once, both reduce layers are used, and one model has a blank gate.
SPECS = [
    dict(encoder="C-M", center="T", output="A", reduce="conv"),
    dict(encoder="R-W", center="G", output="D", reduce="attention", blank_gate=True),
    dict(encoder="C-C", center="", output="", reduce="attention", reduce_factor=3, upsample=3),
]


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_config(**overrides) -> SandGlassConfig:
    settings = dict(
        d_model=8,
        encoder="C",
        blocks_per_stage=1,
        center="T",
        output="C",
        num_heads=2,
        ffn_ratio=2,
        max_distance=16,
        mirror_key_dim=4,
        dropout=0.0,
        max_length=32,
    )
    settings.update(overrides)
    return SandGlassConfig(**settings)


def tiny_model(dtype: torch.dtype = torch.float64, seed: int = 0, **overrides) -> SandGlass:
    torch.manual_seed(seed)
    return SandGlass(VOCAB, tiny_config(**overrides)).to(dtype).eval()


def token_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random real tokens (ids 4..V-1); padding holds random ids too, so only the mask can hide it."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, VOCAB, (len(lengths), max(lengths)), generator=generator)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return tokens, mask


@pytest.mark.parametrize("upsample", [1, 2, 3])
def test_output_is_upsample_times_longer_with_its_mask(upsample):
    model = tiny_model(upsample=upsample)
    src, src_mask = token_batch([5, 2, 7])
    output = model(src, src_mask)
    assert output.log_probs.shape == (3, upsample * 7, VOCAB)
    assert output.mask.dtype == torch.bool
    expected_mask = torch.arange(upsample * 7)[None, :] < upsample * torch.tensor([[5], [2], [7]])
    assert torch.equal(output.mask, expected_mask)
    total = output.log_probs.double().logsumexp(dim=-1)
    torch.testing.assert_close(total, torch.zeros_like(total), atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["encoder"] + "/" + spec["reduce"])
def test_a_sentence_scores_the_same_alone_and_in_a_padded_batch(spec):
    model = tiny_model(**spec)
    upsample = model.config.upsample
    lengths = [7, 3, 5, 1, 8]
    src, src_mask = token_batch(lengths, seed=1)
    batched = model(src, src_mask)
    for index, length in enumerate(lengths):
        alone = model(src[index : index + 1, :length], src_mask[index : index + 1, :length])
        assert alone.log_probs.shape[1] == upsample * length
        # rtol: bos and eos sit at about -1e9 (the label bias), where float64 rounding alone is ~1e-7 and
        # differs between CPUs' product kernels; everywhere else the tolerance stays ~1e-9.
        torch.testing.assert_close(
            batched.log_probs[index, : upsample * length], alone.log_probs[0], atol=1e-9, rtol=1e-12
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["encoder"] + "/" + spec["reduce"])
def test_features_match_their_reference_at_real_frames(spec):
    # features() leaves every layer's output padding unzeroed; reference_features() zeroes it.
    model = tiny_model(**spec)
    src, src_mask = token_batch([7, 3, 5, 1, 8], seed=6)
    features, mask = model.features(src, src_mask)
    reference, reference_mask = model.reference_features(src, src_mask)
    assert torch.equal(mask, reference_mask)
    torch.testing.assert_close(features[mask], reference[mask], atol=1e-12, rtol=0)
    assert not torch.allclose(features[~mask], reference[~mask])  # the padding frames did change


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["encoder"] + "/" + spec["reduce"])
def test_unzeroed_padding_leaves_the_training_loss_and_its_gradients_unchanged(spec, monkeypatch):
    model = tiny_model(torch.float64, seed=7, **spec).train()
    generator = torch.Generator().manual_seed(8)
    sources = [torch.randint(4, VOCAB, (length,), generator=generator).tolist() for length in (7, 3, 5, 1)]
    targets = [torch.randint(4, VOCAB, (length,), generator=generator).tolist() for length in (5, 2, 4, 1)]
    batch = collate(sources, targets, model.pad_id)

    def loss_and_gradients():
        model.zero_grad()
        loss = compute_loss(model, batch).loss
        loss.backward()
        return loss.detach(), [param.grad.clone() for param in model.parameters()]

    loss, gradients = loss_and_gradients()
    monkeypatch.setattr(model, "features", model.reference_features)
    reference_loss, reference_gradients = loss_and_gradients()
    torch.testing.assert_close(loss, reference_loss, atol=1e-12, rtol=0)
    for (name, _), gradient, reference in zip(model.named_parameters(), gradients, reference_gradients, strict=True):
        torch.testing.assert_close(gradient, reference, atol=1e-10, rtol=1e-8, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["encoder"] + "/" + spec["reduce"])
def test_outside_training_a_batch_with_no_padding_gives_its_layers_no_mask(spec):
    model = tiny_model(**spec)
    block_masks = []
    for stack in model.modules():
        if isinstance(stack, BlockStack):
            stack.register_forward_pre_hook(lambda module, args: block_masks.append(args[1]))

    def masks_seen(lengths, training):
        block_masks.clear()
        src, src_mask = token_batch(lengths)
        output = model.train(training)(src, src_mask)
        assert output.mask.all() == (min(lengths) == max(lengths))
        return block_masks[:]

    assert all(mask is None for mask in masks_seen([6, 6], training=False))
    assert all(isinstance(mask, torch.Tensor) for mask in masks_seen([6, 6], training=True))
    assert all(isinstance(mask, torch.Tensor) for mask in masks_seen([6, 4], training=False))
    assert len(block_masks) > 2


def test_log_probs_keep_the_model_dtype():
    # A float64 model must give float64 log-probs, or float64 checks (gradcheck, 1e-9 tolerances) are
    # silently done at float32 precision.
    model = tiny_model(torch.float64)
    src, src_mask = token_batch([4, 2])
    assert model(src, src_mask).log_probs.dtype == torch.float64


def test_a_fresh_model_starts_near_the_uniform_distribution():
    # Tied logits of an N(0, 1) embedding would have standard deviation √d: a near one-hot start whose CTC
    # loss is several times log V and which trains far more slowly.
    torch.manual_seed(0)
    vocab = 2000
    model = SandGlass(vocab, tiny_config(d_model=64, mirror_key_dim=16)).eval()
    src, src_mask = token_batch([6, 4])
    log_probs = model(src, src_mask).log_probs
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    assert entropy.min() > 0.9 * torch.log(torch.tensor(float(vocab - 2)))


def test_logits_are_a_time_major_tensor_seen_batch_first():
    # CTC reads (u·S, B, V); a contiguous time-major layout spares strided copies of the largest tensor.
    model = tiny_model()
    src, src_mask = token_batch([5, 3])
    output = model(src, src_mask)
    assert output.logits.shape == output.log_probs.shape == (2, 10, VOCAB)
    assert output.logits.transpose(0, 1).is_contiguous()
    torch.testing.assert_close(output.log_probs, output.logits.log_softmax(dim=-1))


def test_bos_and_eos_are_never_outputs():
    model = tiny_model()
    with torch.no_grad():  # rows that would win every frame if the projection did not rule them out
        model.embed.weight[[model.bos_id, model.eos_id]] = 10 * model.embed.weight.abs().max()
    src, src_mask = token_batch([5, 3], seed=2)
    output = model(src, src_mask)
    assert (output.logits[..., [model.bos_id, model.eos_id]] < -1e8).all()
    assert (output.logits[..., 4:] > -1e3).all()
    labels = model.best_labels(src, src_mask).labels
    assert not torch.isin(labels, torch.tensor([model.bos_id, model.eos_id])).any()


@pytest.mark.parametrize("blank_gate", [False, True])
def test_the_training_loss_has_the_gradient_of_ctc_on_the_log_softmax(blank_gate):
    # compute_loss takes the fast CTC path with the gradient written over the logits; the reference is autograd
    # through ctc_loss on the log-probabilities of the same logits (and gate).
    model = tiny_model(torch.float64, seed=3, blank_gate=blank_gate)
    generator = torch.Generator().manual_seed(5)
    sources = [torch.randint(4, VOCAB, (length,), generator=generator).tolist() for length in (6, 4, 5)]
    targets = [torch.randint(4, VOCAB, (length,), generator=generator).tolist() for length in (4, 2, 3)]
    batch = collate(sources, targets, model.pad_id)
    fast = compute_loss(model, batch)
    fast.loss.backward()
    fast_grads = [param.grad.clone() for param in model.parameters()]
    model.zero_grad()
    output = model(batch.src, batch.src_mask)
    reference = ctc_loss(output.log_probs, output.mask, batch.tgt, batch.tgt_mask, blank=model.blank_id)
    reference.loss.backward()
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-12, rtol=0)
    for fast_grad, param in zip(fast_grads, model.parameters(), strict=True):
        torch.testing.assert_close(fast_grad, param.grad, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("blank_gate", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 3, 256])
def test_best_labels_are_the_argmax_of_the_log_probs(chunk_rows, blank_gate):
    model = tiny_model(blank_gate=blank_gate)
    src, src_mask = token_batch([6, 2, 4], seed=4)
    output = model(src, src_mask)
    frames = model.best_labels(src, src_mask, chunk_rows=chunk_rows)
    assert torch.equal(frames.mask, output.mask)
    assert not frames.mask.all()
    assert torch.equal(frames.labels[frames.mask], output.log_probs.argmax(dim=-1)[frames.mask])
    assert (frames.labels[~frames.mask] == model.blank_id).all()
    with pytest.raises(ValueError, match="chunk_rows"):
        model.best_labels(src, src_mask, chunk_rows=0)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 64])
def test_frame_labels_match_their_reference_in_both_precisions(chunk_rows, precision):
    model = tiny_model(torch.float32, seed=2)
    rows = torch.randn(23, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        rows[3] = 10 * model.embed.weight[model.bos_id]  # bos would win if it were a label
    rows[4] = 0.0  # every label's logit ties: the first label wins
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        labels = model.frame_labels(rows, chunk_rows)
        reference = model.reference_frame_labels(rows, chunk_rows)
    assert torch.equal(labels, reference)
    assert labels[4] == 0
    assert not torch.isin(labels, torch.tensor([model.bos_id, model.eos_id])).any()
    assert model.frame_labels(rows[:0], chunk_rows).shape == (0,)


def gated_model_with_both_kinds_of_frames() -> tuple[SandGlass, torch.Tensor, torch.Tensor]:
    """A gated model and a batch where σ(s) ≥ ½ on some frames, and below it on others with a label winning."""
    model = tiny_model(blank_gate=True, seed=1)
    src, src_mask = token_batch([6, 2, 4], seed=4)
    with torch.no_grad():  # gate logits spread wide around zero, so labels win where σ(s) is small
        model.blank_gate.weight *= 30
        features, _ = model.features(src, src_mask)
        model.blank_gate.bias -= model.blank_logits(features).median()
    return model, src, src_mask


def test_a_blank_gate_gives_a_distribution_and_best_labels_of_both_kinds_of_frames():
    model, src, src_mask = gated_model_with_both_kinds_of_frames()
    output = model(src, src_mask)
    torch.testing.assert_close(output.log_probs.exp().sum(dim=-1), torch.ones(output.mask.shape, dtype=torch.float64))
    torch.testing.assert_close(output.log_probs[..., model.blank_id], torch.sigmoid(output.blank_logits).log())
    frames = model.best_labels(src, src_mask)
    assert torch.equal(frames.labels[frames.mask], output.log_probs.argmax(dim=-1)[frames.mask])
    open_frames = (output.blank_logits < 0) & frames.mask
    assert (output.blank_logits >= 0).any() and (frames.labels[open_frames] != model.blank_id).any()


def test_a_blank_gate_decodes_certain_blanks_without_the_vocabulary_projection(monkeypatch):
    model, src, src_mask = gated_model_with_both_kinds_of_frames()
    projected_rows = []
    projection = model.vocabulary_projection

    def counted_projection():
        projected_rows.append(None)
        return projection()

    monkeypatch.setattr(model, "vocabulary_projection", counted_projection)
    model.best_labels(src, src_mask, chunk_rows=1)
    output = model(src, src_mask)
    gate = output.blank_logits[output.mask]
    # One projection per real frame that a label could win (forward's own projection counted apart).
    assert len(projected_rows) - 1 == int((gate < 0).sum()) < gate.numel()


@pytest.mark.parametrize("length", [1, 3, 5, 7, 11])
@pytest.mark.parametrize("factor", [2, 3])
def test_odd_source_lengths(length, factor):
    model = tiny_model(encoder="C-C", reduce_factor=factor, upsample=2)
    src, src_mask = token_batch([length], seed=length)
    output = model(src, src_mask)
    assert output.log_probs.shape == (1, 2 * length, VOCAB)
    assert output.mask.all()
    assert torch.isfinite(output.log_probs).all()


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec["encoder"] + "/" + spec["reduce"])
def test_gradients_reach_every_parameter(spec):
    model = tiny_model(torch.float32, **spec).train()
    src, src_mask = token_batch([6, 3, 5])
    output = model(src, src_mask)
    output.log_probs[output.mask].sum().backward()
    unreached = [name for name, param in model.named_parameters() if param.grad is None]
    assert not unreached, f"parameters without gradient: {unreached}"
    zero = [name for name, param in model.named_parameters() if not param.grad.abs().sum() > 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"


@pytest.mark.parametrize(("activation_dropout", "expected"), [(None, 0.25), (0.0, 0.0)])
def test_activation_dropout_reaches_every_transformer_block(activation_dropout, expected):
    model = tiny_model(dropout=0.25, activation_dropout=activation_dropout)
    blocks = [module for module in model.modules() if isinstance(module, TransformerBlock)]
    assert blocks
    assert all(block.ffn.dropout.p == expected and block.dropout.p == 0.25 for block in blocks)


@pytest.mark.parametrize("field", ["encoder", "center", "output"])
def test_an_invalid_spec_letter_names_the_field(field):
    with pytest.raises(ValueError, match=rf"{field} spec 'C-X'"):
        tiny_model(**{field: "C-X"})


@pytest.mark.parametrize("name", ["d_model", "reduce_factor", "upsample", "kernel_size", "num_heads", "max_length"])
def test_non_positive_sizes_are_named(name):
    with pytest.raises(ValueError, match=name):
        tiny_model(**{name: 0})


def test_invalid_reduce_and_vocab_are_named():
    with pytest.raises(ValueError, match="reduce must be 'conv' or 'attention'"):
        tiny_model(reduce="max")
    with pytest.raises(ValueError, match="vocab_size"):
        SandGlass(0, tiny_config())


def test_a_source_longer_than_max_length_is_refused():
    model = tiny_model(max_length=6)
    src, src_mask = token_batch([7])
    with pytest.raises(ValueError, match="max_length 6"):
        model(src, src_mask)
    model(src[:, :6], src_mask[:, :6])


def test_wrong_input_shapes_are_refused():
    model = tiny_model()
    src, src_mask = token_batch([4, 3])
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        model(src[0], src_mask[0])
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        model(src, src_mask[:, :3])


def test_ctc_greedy_decoding_gives_a_list_per_sentence():
    model = tiny_model()
    lengths = [5, 1, 3]
    src, src_mask = token_batch(lengths)
    output = model(src, src_mask)
    decoded = ctc_greedy_decode(output.log_probs, output.mask, blank=model.blank_id)
    assert len(decoded) == 3
    for tokens, length in zip(decoded, lengths, strict=True):
        assert all(isinstance(token, int) and token != model.blank_id for token in tokens)
        assert len(tokens) <= model.config.upsample * length


@pytest.mark.parametrize("blank_gate", [False, True])
def test_a_tiny_sandglass_learns_to_copy(blank_gate):
    torch.manual_seed(0)
    pairs = [[4, 5, 6], [7, 8, 9, 10], [11, 4, 8], [6, 6, 9, 5, 7], [12]]
    batch = collate(pairs, pairs, pad_id=0)
    model = SandGlass(VOCAB, tiny_config(d_model=32, mirror_key_dim=8, max_length=16, blank_gate=blank_gate))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        model.train()
        loss = compute_loss(model, batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9 and generate(model.eval(), batch.src, batch.src_mask) == pairs:
            break
    assert generate(model.eval(), batch.src, batch.src_mask) == pairs


def test_the_vocabulary_weight_cast_is_kept_until_the_weight_changes():
    model = tiny_model(torch.float32, seed=2)
    assert model.cast_vocabulary_weight(None) is model.embed.weight
    assert model.cast_vocabulary_weight(torch.float32) is model.embed.weight
    cast = model.cast_vocabulary_weight(torch.bfloat16)
    assert cast.dtype == torch.bfloat16 and torch.equal(cast, model.embed.weight.detach().bfloat16())
    assert model.cast_vocabulary_weight(torch.bfloat16) is cast
    with torch.no_grad():
        model.embed.weight.add_(1.0)  # as an optimizer step does
    updated = model.cast_vocabulary_weight(torch.bfloat16)
    assert updated is not cast and torch.equal(updated, model.embed.weight.detach().bfloat16())
    model.load_state_dict(tiny_model(torch.float32, seed=3).state_dict())
    assert torch.equal(model.cast_vocabulary_weight(torch.bfloat16), model.embed.weight.detach().bfloat16())
