"""MBConv's 4×-wide hidden path as one autograd function that allocates few hidden-sized buffers.

Between its two projections MBConv works on a hidden ``E = expand_ratio · C`` channels wide, and on the CPU a
fresh tensor of that size costs more in page faults than the arithmetic done on it. Composed of autograd's
operations, a forward+backward allocates about fourteen such tensors; here the forward keeps four (the saved
``a``, ``m``, ``d`` and ``s``) and the backward allocates three, working in place where the value is its own
except for GELU's backward, which is faster into another buffer (``dL/dd`` goes to a scratch buffer, see
:mod:`sandglass.layers.scratch`).
:meth:`sandglass.layers.MBConv.reference_forward` is the same block composed of ordinary operations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from sandglass.layers.scratch import scratch

_gelu_backward_into = torch.ops.aten.gelu_backward.grad_input


def inverted_bottleneck(
    normed: torch.Tensor,
    expand_weight: torch.Tensor,
    expand_bias: torch.Tensor,
    depthwise_weight: torch.Tensor,
    depthwise_bias: torch.Tensor,
    se_weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None,
    project_weight: torch.Tensor,
    project_bias: torch.Tensor,
    mask: torch.Tensor | None,
    padding: int,
) -> torch.Tensor:
    """MBConv between its norm and its residual, non-causal, with symmetric depthwise padding.

        a = W_e n_t + b_e,   m = GELU(a) ⊙ mask,   d = DWConv_k(m),   g = GELU(d),
        s = g ⊙ sigmoid(W_2 GELU(W_1 mean_t g + b_1) + b_2)   (s = g without squeeze-excitation),
        y_t = W_p s_t + b_p

    ``mean_t`` runs over the real positions; ``padding`` positions are added on each side of the depthwise conv.
    ``se_weights`` is ``(W_1, b_1, W_2, b_2)``. Gradients are first order only.

    Shape:
        normed: (B, T, C), mask: (B, T) → (B, T, C)
    """
    return _InvertedBottleneck.apply(
        normed, expand_weight, expand_bias, depthwise_weight, depthwise_bias,
        *(se_weights or (None, None, None, None)), project_weight, project_bias, mask, padding,
    )  # fmt: skip


def as_channels_last_image(hidden: torch.Tensor) -> torch.Tensor:
    """``(B, T, E)`` viewed as the ``channels_last`` image ``(B, E, T, 1)``, no copy."""
    return hidden.unsqueeze(2).permute(0, 3, 1, 2)


def _from_image(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 2, 3, 1).squeeze(2).contiguous()


def _se_logits(summary: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor):
    return F.linear(F.gelu(F.linear(summary, w1, b1)), w2, b2)


class _InvertedBottleneck(torch.autograd.Function):
    @staticmethod
    def forward(ctx, normed, we, be, wd, bd, w1, b1, w2, b2, wp, bp, mask, padding):
        batch, length, channels = normed.shape
        hidden = we.shape[0]
        rows = normed.reshape(-1, channels)
        weights = None if mask is None else mask.to(normed.dtype).unsqueeze(-1)  # (B, T, 1)
        # The expansion reads [n_t ⊙ mask_t, mask_t] against [W_e, b_e]: a is exactly zero at padding, and so is
        # m = GELU(a), with no pass of the mask or copy of the bias over the 4×-wide hidden; its backward takes
        # the bias's gradient as the last column of the weight's and masks only the narrow dL/dn.
        inputs = rows.new_empty(rows.shape[0], channels + 1)
        if weights is None:
            inputs[:, :channels] = rows
            inputs[:, channels] = 1.0
        else:
            torch.mul(rows, weights.view(-1, 1), out=inputs[:, :channels])
            inputs[:, channels] = weights.view(-1)
        expand = torch.cat([we, be.unsqueeze(1)], dim=1)
        a = torch.mm(inputs, expand.t()).view(batch, length, hidden)
        m = F.gelu(a)
        d = _from_image(F.conv2d(as_channels_last_image(m), wd.unsqueeze(-1), bd, padding=(padding, 0), groups=hidden))
        s = F.gelu(d)
        summary = gate = mean_weights = None
        if w1 is not None:
            if weights is None:
                summary = s.mean(dim=1)
            else:
                mean_weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
                summary = (mean_weights.transpose(1, 2) @ s).squeeze(1)
            gate = torch.sigmoid(_se_logits(summary, w1, b1, w2, b2))
            s.mul_(gate.unsqueeze(1))
        out = torch.addmm(bp, s.view(-1, hidden), wp.t()).view(batch, length, -1)
        ctx.save_for_backward(inputs, expand, a, m, wd, d, s, wp, summary, gate, w1, b1, w2, b2, weights, mean_weights)
        ctx.padding = padding
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        inputs, expand, a, m, wd, d, s, wp, summary, gate, w1, b1, w2, b2, weights, mean_weights = ctx.saved_tensors
        batch, length, hidden = a.shape
        channels = inputs.shape[1] - 1
        grad_out = grad_out.reshape(-1, channels)
        grad_wp = grad_out.t() @ s.view(-1, hidden)
        grad_bp = grad_out.sum(dim=0)
        grad = (grad_out @ wp).view(batch, length, hidden)  # dL/ds, then dL/dg in the same buffer
        grad_w1 = grad_b1 = grad_w2 = grad_b2 = None
        if gate is not None:
            # dL/dz = Σ_t dL/ds ⊙ g ⊙ σ'(z) = Σ_t (dL/ds ⊙ s) ⊙ (1 - gate): no division by the gate.
            grad_logits = (grad * s).sum(dim=1).mul_(1.0 - gate)
            grad_summary, grad_w1, grad_b1, grad_w2, grad_b2 = _se_backward(summary, w1, b1, w2, b2, grad_logits)
            grad.mul_(gate.unsqueeze(1))
            if mean_weights is None:
                grad.add_(grad_summary.unsqueeze(1), alpha=1.0 / length)
            else:
                grad.addcmul_(mean_weights, grad_summary.unsqueeze(1))
        # GELU's backward runs about half again as long written over its own input as into another buffer, so
        # dL/dd goes to a scratch buffer (it dies in the convolution's backward) and dL/da back into dL/ds's.
        grad_d = _gelu_backward_into(grad, d, grad_input=scratch("hidden_gradient", grad.shape, grad))
        grad_m, grad_wd, grad_bd = torch.ops.aten.convolution_backward(
            as_channels_last_image(grad_d),
            as_channels_last_image(m),
            wd.unsqueeze(-1),
            bias_sizes=[hidden],
            stride=[1, 1],
            padding=[ctx.padding, 0],
            dilation=[1, 1],
            transposed=False,
            output_padding=[0, 0],
            groups=hidden,
            output_mask=[True, True, True],
        )
        grad_m = _from_image(grad_m)
        grad = _gelu_backward_into(grad_m, a, grad_input=grad).view(-1, hidden)  # dL/da
        grad_normed = (grad @ expand[:, :channels]).view(batch, length, channels)
        if weights is not None:
            grad_normed.mul_(weights)
        grad_expand = grad.t() @ inputs
        grad_we, grad_be = grad_expand[:, :channels], grad_expand[:, channels]
        return (
            grad_normed, grad_we, grad_be, grad_wd.squeeze(-1), grad_bd,
            grad_w1, grad_b1, grad_w2, grad_b2, grad_wp, grad_bp, None, None,
        )  # fmt: skip


def _se_backward(summary, w1, b1, w2, b2, grad_logits):
    """The squeeze-excitation's small ``(B, E)`` MLP, differentiated by autograd from the saved summary."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_() for t in (summary, w1, b1, w2, b2)]
        logits = _se_logits(*leaves)
        return torch.autograd.grad(logits, leaves, grad_logits)
