"""Per-sample kernels mixed from a kernel bank by a softmax over dot products, with a memory-lean backward.

The mixture weights have one entry per sample, bank kernel and channel pair (``B·M·C_in·C_out``, far more than
the activations at short lengths), so the cost of the dot-product-generated convolution is the passes over them.
Autograd's backward would allocate ``dL/dα``, ``α ⊙ dL/dα`` and ``dL/dlogits`` as separate buffers, and reaches
the bank mixture through a broadcast matmul that transposes α; here the gradient lives in one buffer, in place.
:func:`mixed_kernel_conv` takes the sequence convolution that applies the kernels into the same function, so
that the kernels' gradient never leaves it either; the buffers that die inside are scratch buffers
(:mod:`sandglass.layers.scratch`), which keep their pages from one step to the next.

Kernels are stored tap-major: ``W[b, k, i, o]`` is the layer's ``W_b[o, i, k]``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from sandglass.layers.channels_last import sequence_windows
from sandglass.layers.scratch import scratch


def mixed_kernels(keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Each sample's kernels, mixed from the bank by a softmax over the bank kernels' keys.

        α[m, i, o] = softmax_m(keys[m, i] · queries[o]),   W[k, i, o] = Σ_m α[m, i, o] · K[m, k]

    with ``keys[m, i] = κ[m] ⊙ q_in[i]``, ``queries[o] = q_out[o] ⊙ FC(g)`` of each sample and ``K`` the
    flattened bank kernels. Gradients are first order only.

    Shape:
        keys: (M, C_in, D), queries: (B, C_out, D), bank: (M, ks^d) → (B, ks^d, C_in, C_out)
    """
    return _BankMixture.apply(keys, queries, bank)


def bank_mixture_weights(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The mixture weights of every channel pair over the bank kernels, bank index first.

        α[m, i, o] = softmax_m(keys[m, i] · queries[o])

    Shape:
        keys: (M, C_in, D), queries: (..., C_out, D) → (..., M, C_in, C_out)
    """
    return (keys @ queries.unsqueeze(-3).transpose(-1, -2)).softmax(dim=-3)


def mixed_kernels_reference(keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """:func:`mixed_kernels` through autograd's own operations: the reference its backward is tested against.

        α[m, i, o] = softmax_m(keys[m, i] · queries[o]),   W[k, i, o] = Σ_m α[m, i, o] · K[m, k]

    Shape:
        keys: (M, C_in, D), queries: (B, C_out, D), bank: (M, ks^d) → (B, ks^d, C_in, C_out)
    """
    return torch.einsum("bmio,mk->bkio", bank_mixture_weights(keys, queries), bank)


class _BankMixture(torch.autograd.Function):
    """The autograd function of :func:`mixed_kernels`: a hand-written backward that keeps only α.

    α is computed in the inputs' common dtype outside autocast, so the saved α and its gradient agree."""

    @staticmethod
    def forward(ctx, keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(torch.promote_types(keys.dtype, queries.dtype), bank.dtype)
        ctx.dtypes = (keys.dtype, queries.dtype, bank.dtype)
        keys, queries, bank = keys.to(dtype), queries.to(dtype), bank.to(dtype)
        with torch.autocast(keys.device.type, enabled=False):
            alpha, kernels = _mix(keys, queries, bank)
        ctx.save_for_backward(keys, queries, bank, alpha)
        return kernels.view(queries.shape[0], bank.shape[1], keys.shape[1], queries.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_kernels: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        keys, queries, bank, alpha = ctx.saved_tensors
        grad = grad_kernels.to(alpha.dtype).reshape(queries.shape[0], bank.shape[1], -1)  # (B, ks^d, C_in·C_out)
        with torch.autocast(keys.device.type, enabled=False):
            grads = _mix_backward(keys, queries, bank, alpha, grad, ctx.needs_input_grad)
        return tuple(None if g is None else g.to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True))


def mixed_kernel_conv(
    x: torch.Tensor, keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor, padding: tuple[int, int]
) -> torch.Tensor:
    """Each sequence convolved with its own kernels mixed from the bank, as one function with one backward.

        α[m, i, o] = softmax_m(keys[m, i] · queries[o]),   W[k, i, o] = Σ_m α[m, i, o] · K[m, k],
        y[t, o] = Σ_{k,i} W[k, i, o] · x̃[t + k, i],   x̃ = x with ``padding`` zeros (front, back)

    :func:`mixed_kernels` followed by :func:`sandglass.layers.dot_product_kernel_conv.sample_window_conv`,
    computed the same way, with the gradient of ``W`` and the mixture's gradient kept in scratch buffers (they
    never leave the backward) and the windows' gradient summed back onto the positions directly. All inputs
    share one dtype; autocast is not applied inside. Gradients are first order only.

    Shape:
        x: (B, T, C_in), keys: (M, C_in, D), queries: (B, C_out, D), bank: (M, ks)
        → (B, T + front + back - ks + 1, C_out)
    """
    return _MixedKernelConv.apply(x, keys, queries, bank, padding)


class _MixedKernelConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keys, queries, bank, padding):
        batch, length, in_channels = x.shape
        out_channels = queries.shape[1]
        kernel_size = bank.shape[1]
        with torch.autocast(x.device.type, enabled=False):
            alpha, kernels = _mix(keys, queries, bank)
            kernels = kernels.view(batch, kernel_size * in_channels, out_channels)
            windows = sequence_windows(x, kernel_size, *padding).transpose(-1, -2).flatten(2)  # (B, T', ks·C_in)
            out = torch.bmm(windows, kernels)
        ctx.save_for_backward(keys, queries, bank, alpha, kernels, windows)
        ctx.front, ctx.length = padding[0], length
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        # The saved tensors are read once: a checkpointed graph refuses a second unpack.
        keys, queries, bank, alpha, kernels, windows = ctx.saved_tensors
        grad_out = grad_out.to(alpha.dtype).contiguous()
        batch, out_length, _ = grad_out.shape
        kernel_size, in_channels = bank.shape[1], keys.shape[1]
        grad_x = grads = None
        with torch.autocast(grad_out.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                grad_windows = scratch("grad_windows", windows.shape, grad_out)
                torch.bmm(grad_out, kernels.transpose(1, 2), out=grad_windows)
                grad_windows = grad_windows.view(batch, out_length, kernel_size, in_channels)
                grad_x = _sum_windows(grad_windows, ctx.length, ctx.front)
            if any(ctx.needs_input_grad[1:4]):
                grad_kernels = scratch("grad_kernels", kernels.shape, grad_out)
                torch.bmm(windows.transpose(1, 2), grad_out, out=grad_kernels)
                grad_kernels = grad_kernels.view(batch, kernel_size, -1)
                grads = _mix_backward(keys, queries, bank, alpha, grad_kernels, ctx.needs_input_grad[1:4])
        return grad_x, *(grads or (None, None, None)), None


def _sum_windows(grad_windows: torch.Tensor, length: int, front: int) -> torch.Tensor:
    """The gradient of the unfolded windows summed back onto the positions they read: the unfold's backward.

        dx[s] = Σ_k dwindows[s + front - k, k]   over the windows that exist

    Shape:
        grad_windows: (B, T', ks, C) → (B, length, C)
    """
    batch, out_length, kernel_size, channels = grad_windows.shape
    grad_x = grad_windows.new_zeros(batch, length, channels)
    for tap in range(kernel_size):  # ks shifted slices, not positions
        first, last = max(0, front - tap), min(out_length, length + front - tap)
        if first < last:
            grad_x[:, first - front + tap : last - front + tap] += grad_windows[:, first:last, tap]
    return grad_x


def _mix(keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α (bank index first) and the mixed kernels, tap-major; the logits live in a scratch buffer.

    Shape:
        keys: (M, C_in, D), queries: (B, C_out, D), bank: (M, ks^d) → α: (B, M, C_in·C_out), W: (B, ks^d, C_in·C_out)
    """
    num_kernels, in_channels, _ = keys.shape
    batch, out_channels, _ = queries.shape
    logits_shape = (batch, num_kernels * in_channels, out_channels)
    logits = torch.bmm(_flat_keys(keys, batch), queries.transpose(1, 2), out=scratch("mixture", logits_shape, queries))
    alpha = logits.view(batch, num_kernels, -1).softmax(dim=1)
    return alpha, torch.bmm(bank.t().expand(batch, -1, -1), alpha)


def _mix_backward(
    keys: torch.Tensor,
    queries: torch.Tensor,
    bank: torch.Tensor,
    alpha: torch.Tensor,
    grad_kernels: torch.Tensor,
    needs_grad: tuple[bool, ...],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The gradients of ``keys``, ``queries`` and ``bank`` (None where ``needs_grad`` says no) from the kernels'.

    The softmax backward ``dL/dl = α ⊙ (dL/dα − Σ_m α ⊙ dL/dα)`` runs in place in one scratch buffer.

    Shape:
        alpha: (B, M, C_in·C_out), grad_kernels: (B, ks^d, C_in·C_out) → (M, C_in, D), (B, C_out, D), (M, ks^d)
    """
    num_kernels, in_channels, key_dim = keys.shape
    batch, out_channels, _ = queries.shape
    grad_bank = torch.bmm(grad_kernels, alpha.transpose(1, 2)).sum(0).t() if needs_grad[2] else None
    if not (needs_grad[0] or needs_grad[1]):
        return None, None, grad_bank
    grad_alpha = torch.bmm(bank.expand(batch, -1, -1), grad_kernels, out=scratch("mixture", alpha.shape, alpha))
    weighted = torch.mul(alpha[:, 0], grad_alpha[:, 0], out=scratch("mixture_weighted", alpha[:, 0].shape, alpha))
    for m in range(1, num_kernels):
        weighted.addcmul_(alpha[:, m], grad_alpha[:, m])
    grad_logits = grad_alpha.sub_(weighted.unsqueeze(1)).mul_(alpha).view(batch, -1, out_channels)
    grad_keys = grad_queries = None
    if needs_grad[0]:
        grad_keys = torch.bmm(grad_logits, queries).sum(0).view(num_kernels, in_channels, key_dim)
    if needs_grad[1]:
        grad_queries = torch.bmm(grad_logits.transpose(1, 2), _flat_keys(keys, batch))  # (B, C_out, D)
    return grad_keys, grad_queries, grad_bank


def _flat_keys(keys: torch.Tensor, batch: int) -> torch.Tensor:
    """The keys as every sample's left-hand side of the logits' product, no copy.

    Shape:
        keys: (M, C_in, D) → (B, M·C_in, D)
    """
    return keys.reshape(1, -1, keys.shape[-1]).expand(batch, -1, -1)
