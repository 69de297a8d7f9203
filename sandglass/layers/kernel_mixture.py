"""Per-sample kernels mixed from a kernel bank by a softmax over dot products, with a memory-lean backward.

The mixture weights have one entry per sample, bank kernel and channel pair (``B·M·C_in·C_out``, far more than
the activations at short lengths), so the cost of the dot-product-generated convolution is the passes over them.
Autograd's backward would allocate ``dL/dα``, ``α ⊙ dL/dα`` and ``dL/dlogits`` as separate buffers, and reaches
the bank mixture through a broadcast matmul that transposes α; here the gradient lives in one buffer, in place.

Kernels are stored tap-major: ``W[b, k, i, o]`` is the layer's ``W_b[o, i, k]``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


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
        num_kernels, in_channels, key_dim = keys.shape
        batch, out_channels, _ = queries.shape
        taps = bank.shape[1]
        with torch.autocast(keys.device.type, enabled=False):
            flat_keys = keys.reshape(1, num_kernels * in_channels, key_dim).expand(batch, -1, -1)
            logits = torch.bmm(flat_keys, queries.transpose(1, 2))  # (B, M·C_in, C_out)
            alpha = logits.view(batch, num_kernels, -1).softmax(dim=1)  # (B, M, C_in·C_out)
            del logits
            kernels = torch.bmm(bank.t().expand(batch, -1, -1), alpha)  # (B, ks^d, C_in·C_out)
        ctx.save_for_backward(keys, queries, bank, alpha)
        return kernels.view(batch, taps, in_channels, out_channels)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_kernels: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        keys, queries, bank, alpha = ctx.saved_tensors
        num_kernels, in_channels, key_dim = keys.shape
        batch = queries.shape[0]
        grad = grad_kernels.to(alpha.dtype).reshape(batch, bank.shape[1], -1)  # (B, ks^d, C_in·C_out)
        with torch.autocast(keys.device.type, enabled=False):
            grad_bank = torch.bmm(grad, alpha.transpose(1, 2)).sum(0).t() if ctx.needs_input_grad[2] else None
            grad_keys = grad_queries = None
            if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
                # dL/dα, then the softmax backward in the same buffer: dL/dl = α ⊙ (dL/dα − Σ_m α ⊙ dL/dα).
                grad_alpha = torch.bmm(bank.expand(batch, -1, -1), grad)  # (B, M, C_in·C_out)
                weighted = alpha[:, 0] * grad_alpha[:, 0]
                for m in range(1, num_kernels):
                    weighted.addcmul_(alpha[:, m], grad_alpha[:, m])
                grad_logits = grad_alpha.sub_(weighted.unsqueeze(1)).mul_(alpha).view(batch, -1, queries.shape[1])
            if ctx.needs_input_grad[0]:
                grad_keys = torch.bmm(grad_logits, queries).sum(0).view(num_kernels, in_channels, key_dim)
            if ctx.needs_input_grad[1]:
                flat_keys = keys.reshape(1, num_kernels * in_channels, key_dim).expand(batch, -1, -1)
                grad_queries = torch.bmm(grad_logits.transpose(1, 2), flat_keys)  # (B, C_out, D)
        keys_dtype, queries_dtype, bank_dtype = ctx.dtypes
        return (
            None if grad_keys is None else grad_keys.to(keys_dtype),
            None if grad_queries is None else grad_queries.to(queries_dtype),
            None if grad_bank is None else grad_bank.to(bank_dtype),
        )
