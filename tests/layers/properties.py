"""Property checks every 1-D layer must pass: padding invariance, causality, float64 gradients.

A 1-D layer is called as ``layer(x, mask)`` with ``x: (B, T, C)`` and ``mask: (B, T)`` and returns either the output
``(B, T', C')`` or ``(output, output_mask)`` when it changes the length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from sandglass.layers.masking import padding_outputs_unzeroed


def output_of(result: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The output tensor of a layer call, whether or not the layer also returned a mask."""
    return result[0] if isinstance(result, tuple) else result


def padded_batch(
    lengths: Sequence[int], channels: int, *, dtype: torch.dtype = torch.float64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences of the given lengths, padded with large garbage values so leaks show.

    Shape:
        → x: (B, max(lengths), channels), mask: (B, max(lengths))
    """
    generator = torch.Generator().manual_seed(seed)
    batch, max_len = len(lengths), max(lengths)
    x = torch.randn(batch, max_len, channels, generator=generator, dtype=dtype)
    mask = torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]
    x = torch.where(mask[..., None], x, torch.full_like(x, 1e3))
    return x, mask


def assert_padding_invariant(
    layer: nn.Module,
    channels: int,
    lengths: Sequence[int] = (7, 12, 3, 9),
    *,
    scale: int = 1,
    atol: float = 1e-10,
    call: Callable[..., torch.Tensor] | None = None,
) -> None:
    """Outputs at a sequence's real positions are the same alone as padded in a batch with longer ones, and the
    same again with the padding of every output left unzeroed (``padding_outputs_unzeroed``).

    ``scale`` maps an input length to an output length for layers that change it: a float ``ks`` for expansion,
    or a negative ``-ks`` meaning ``ceil(T / ks)`` for reduction.
    """
    layer = layer.double().eval()
    run = call or (lambda x, mask: output_of(layer(x, mask)))
    x, mask = padded_batch(lengths, channels)
    batched = run(x, mask)
    with padding_outputs_unzeroed():
        unzeroed = run(x, mask)
    for index, length in enumerate(lengths):
        alone = run(x[index : index + 1, :length], mask[index : index + 1, :length])
        out_len = -(-length // -scale) if scale < 0 else length * scale
        for result, how in ((batched, "in a padded batch"), (unzeroed, "with its padding outputs unzeroed")):
            torch.testing.assert_close(
                result[index, :out_len],
                alone[0, :out_len],
                atol=atol,
                rtol=1e-7,
                msg=lambda m, i=index, how=how: f"sequence {i} differs alone and {how}: {m}",
            )


def assert_causal(
    layer: nn.Module, channels: int, length: int = 10, *, call: Callable[..., torch.Tensor] | None = None
) -> None:
    """With ``causal=True``, changing position ``p`` never changes an output before ``p``."""
    layer = layer.double().eval()
    run = call or (lambda x, mask: output_of(layer(x, mask)))
    x, mask = padded_batch([length, length - 3], channels)
    base = run(x, mask)
    for position in range(1, length):
        changed = x.clone()
        changed[:, position:] += torch.randn_like(changed[:, position:]) * 5
        out = run(changed, mask)
        torch.testing.assert_close(
            out[:, :position],
            base[:, :position],
            atol=1e-10,
            rtol=0,
            msg=lambda m, p=position: f"output before position {p} changed when the input at {p} did: {m}",
        )


def assert_gradcheck(layer: nn.Module, *inputs: torch.Tensor) -> None:
    """``torch.autograd.gradcheck`` in float64 on the inputs and every parameter of the layer."""
    layer = layer.double()
    float_inputs = [t for t in inputs if t.is_floating_point()]
    for t in float_inputs:
        t.requires_grad_(True)
    params = [p for p in layer.parameters() if p.requires_grad]

    # gradcheck perturbs the tensors it is given in place, so the closure can call the layer on the originals.
    def run(*_: torch.Tensor) -> torch.Tensor:
        return output_of(layer(*inputs))

    assert torch.autograd.gradcheck(run, (*float_inputs, *params), eps=1e-6, atol=1e-5, nondet_tol=0.0)


def assert_checkpointing_exact(make_layer: Callable[[], nn.Module], channels: int, *, use_reentrant: bool) -> None:
    """Two calls of a layer under ``torch.utils.checkpoint`` give the same gradients as without it.

    Checkpointing recomputes the forward inside the backward and allows one unpack of the saved tensors.
    ``make_layer`` must build the same float64 layer each time.
    """
    x, mask = padded_batch((5, 3), channels)

    def twice(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return output_of(layer(output_of(layer(inputs, mask)), mask))

    def gradients(run: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        layer = make_layer()
        inputs = x.clone().requires_grad_()
        run(layer, inputs).square().sum().backward()
        return [inputs.grad, *(parameter.grad for parameter in layer.parameters())]

    plain = gradients(twice)
    checkpointed = gradients(lambda layer, inputs: checkpoint(twice, layer, inputs, use_reentrant=use_reentrant))
    for got, expected in zip(checkpointed, plain, strict=True):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)


def assert_autocast_takes_reference(layer: nn.Module, channels: int) -> None:
    """Under bf16 autocast a layer with a CPU fast path runs its ``reference_forward``, exactly, in bf16."""
    x, mask = padded_batch((5, 3), channels, dtype=torch.float32)
    layer = layer.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = layer(x, mask)
        reference = layer.reference_forward(x, mask)
    torch.testing.assert_close(out, reference, atol=0, rtol=0)
    with torch.no_grad():
        assert not torch.equal(out, layer(x, mask))  # the products did run in bf16
