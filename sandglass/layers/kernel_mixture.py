"""Per-sample kernels mixed from a kernel bank by a softmax over dot products, with a memory-lean backward.

The mixture weights have one entry per sample, bank kernel and channel pair (``B·M·C_in·C_out``, far more than
the activations at short lengths), so the cost of the dot-product-generated convolution is the passes over them.
Autograd would keep the logits, the weights and a product for the softmax backward, each a fresh buffer; this
function keeps only the weights and computes their gradient in one buffer, in place.
"""

from __future__ import annotations

import torch


def mixed_kernels(keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``W[k, i, o] = Σ_m α[m, i, o] · K[m, k]`` with ``α[:, i, o] = softmax_m(κ[m, i] · q[o])``, per sample.

    ``keys`` hold ``κ[m] ⊙ q_in[i]``, ``queries`` hold ``q_out[o] ⊙ FC(g)`` of each sample, ``bank`` the
    flattened bank kernels. Tap-major output: ``W[b, k]`` is a ``C_in × C_out`` matrix.

    Shape:
        keys: (M, C_in, D), queries: (B, C_out, D), bank: (M, ks^d) → (B, ks^d, C_in, C_out)
    """
    return _BankMixture.apply(keys, queries, bank)


def mixed_kernels_reference(keys: torch.Tensor, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """The same kernels through autograd's own operations (slower backward; for tests and comparisons).

    Shape:
        keys: (M, C_in, D), queries: (B, C_out, D), bank: (M, ks^d) → (B, ks^d, C_in, C_out)
    """
    alpha = (keys @ queries.unsqueeze(1).transpose(-1, -2)).softmax(dim=1)  # (B, M, C_in, C_out)
    return torch.einsum("bmio,mk->bkio", alpha, bank)


class _BankMixture(torch.autograd.Function):
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
    def backward(ctx, grad_kernels: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        keys, queries, bank, alpha = ctx.saved_tensors
        num_kernels, in_channels, key_dim = keys.shape
        batch = queries.shape[0]
        grad = grad_kernels.to(alpha.dtype).reshape(batch, bank.shape[1], -1)  # (B, ks^d, C_in·C_out)
        with torch.autocast(keys.device.type, enabled=False):
            grad_bank = torch.bmm(grad, alpha.transpose(1, 2)).sum(0).t() if ctx.needs_input_grad[2] else None
            # dL/dα, then the softmax backward in the same buffer: dL/dl = α ⊙ (dL/dα − Σ_m α ⊙ dL/dα).
            grad_alpha = torch.bmm(bank.expand(batch, -1, -1), grad)  # (B, M, C_in·C_out)
            weighted = alpha[:, 0] * grad_alpha[:, 0]
            for m in range(1, num_kernels):
                weighted.addcmul_(alpha[:, m], grad_alpha[:, m])
            grad_logits = grad_alpha.sub_(weighted.unsqueeze(1)).mul_(alpha).view(batch, -1, queries.shape[1])
            grad_keys = grad_queries = None
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
