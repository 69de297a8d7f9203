"""Forward+backward time and activation memory of every 1-D layer against plain PyTorch layers of the same width.

Run: ``python benchmarks/layers.py [--device cuda] [--batch 32] [--width 256] [--lengths 64 256]``.
The baseline for convolution-like layers is ``nn.Conv1d(width, width, 3)``; for attention-like layers it is
``nn.MultiheadAttention(width, 4)``. "ratio" is the layer's time over its baseline's time, the two timed in
alternation (one step of each in turn) so that a machine whose speed drifts during the run skews neither.

Memory: on CUDA the peak allocated during one step, on the CPU the bytes autograd saves for the backward pass (the
activations a training step keeps alive), which is what grows with the batch; both in MiB.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from sandglass.layers import (
    AugmentedConv,
    Conv,
    DotProductKernelConv,
    ExpandConv,
    FCGeneratedKernelConv,
    KernelWeightedConv,
    MBConv,
    MirrorAttention,
    ReduceAttention,
    ReduceConv,
    RelativeAttention,
    ReverseConv,
    TransformerBlock,
)


@dataclass(frozen=True)
class Case:
    name: str
    baseline: str  # "conv" or "attention"
    build: Callable[[int, int], nn.Module]  # (width, length) -> module
    run: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (module, x, mask) -> output


def _sequence_call(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = layer(x, mask)
    return out[0] if isinstance(out, tuple) else out


class _ChannelsFirstConv(nn.Module):
    """``nn.Conv1d`` fed the same ``(B, T, C)`` batch, transposes included, as the layers pay them too."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class _MultiheadSelfAttention(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, 4, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, key_padding_mask=~mask, need_weights=False)[0]


CASES = [
    Case("Conv ks=(3,)", "conv", lambda c, t: Conv(c, c, (3,)), _sequence_call),
    Case("Conv ks=(4,1)", "conv", lambda c, t: Conv(c, c, (4, 1)), _sequence_call),
    Case("ReverseConv ks=(3,)", "conv", lambda c, t: ReverseConv(c, c, (3,)), _sequence_call),
    Case("ReduceConv ks=2", "conv", lambda c, t: ReduceConv(c, c, 2), _sequence_call),
    Case("ExpandConv ks=2", "conv", lambda c, t: ExpandConv(c, c, 2), _sequence_call),
    Case("ReduceAttention ks=2", "conv", lambda c, t: ReduceAttention(2), _sequence_call),
    Case(
        "MirrorAttention",
        "attention",
        lambda c, t: MirrorAttention(c // 2),
        lambda layer, x, mask: layer(x, x.flip(1), mask, mask),
    ),
    Case("KernelWeightedConv", "conv", lambda c, t: KernelWeightedConv(c, c, 3), _sequence_call),
    Case("FCGeneratedKernelConv", "conv", lambda c, t: FCGeneratedKernelConv(c, c, 3), _sequence_call),
    Case("DotProductKernelConv", "conv", lambda c, t: DotProductKernelConv(c, c, 3), _sequence_call),
    # Its mixture and product as two functions, for the gain of the fused one in the same run.
    Case(
        "DotProductKernelConv reference",
        "conv",
        lambda c, t: DotProductKernelConv(c, c, 3),
        lambda layer, x, mask: layer.reference_forward(x, mask),
    ),
    Case(
        "AugmentedConv",
        "attention",
        lambda c, t: AugmentedConv(c, c, 3, dk=c // 4, dv=c // 4, num_heads=4, max_length=t),
        _sequence_call,
    ),
    Case("MBConv", "conv", lambda c, t: MBConv(c), _sequence_call),
    # The same block composed of autograd's operations, for the fused hidden path's gain in the same run.
    Case("MBConv reference", "conv", lambda c, t: MBConv(c), lambda layer, x, mask: layer.reference_forward(x, mask)),
    Case("RelativeAttention", "attention", lambda c, t: RelativeAttention(c, num_heads=4), _sequence_call),
    Case("TransformerBlock", "attention", lambda c, t: TransformerBlock(c, num_heads=4), _sequence_call),
]

BASELINES: dict[str, Callable[[int], nn.Module]] = {
    "conv": _ChannelsFirstConv,
    "attention": _MultiheadSelfAttention,
}


@dataclass(frozen=True)
class Measurement:
    milliseconds: float
    memory_mib: float


def _saved_bytes(step: Callable[[], torch.Tensor]) -> int:
    saved = 0
    seen: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            saved += tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return saved


def _forward_backward(run: Callable[[], torch.Tensor]) -> torch.Tensor:
    out = run()
    out.float().square().mean().backward()
    return out


def _timed_step(run: Callable[[], torch.Tensor], on_cuda: bool) -> float:
    start = time.perf_counter()
    _forward_backward(run)
    if on_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _memory_mib(run: Callable[[], torch.Tensor], on_cuda: bool) -> float:
    if not on_cuda:
        return _saved_bytes(partial(_forward_backward, run)) / 2**20
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    _forward_backward(run)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def measure_beside(
    layer: Callable[[], torch.Tensor], baseline: Callable[[], torch.Tensor], on_cuda: bool, repeats: int
) -> tuple[Measurement, Measurement]:
    """The layer's and the baseline's forward+backward, timed in alternation so that both see the same machine.

    A machine whose speed drifts over a run (shared cores, clock changes) would otherwise skew the ratio of a
    layer timed minutes after its baseline; each median is over ``repeats`` alternated steps after 3 warm-ups.
    """
    for _ in range(3):
        _timed_step(baseline, on_cuda)
        _timed_step(layer, on_cuda)
    baseline_times, layer_times = [], []
    for _ in range(repeats):
        baseline_times.append(_timed_step(baseline, on_cuda))
        layer_times.append(_timed_step(layer, on_cuda))
    return (
        Measurement(statistics.median(layer_times) * 1e3, _memory_mib(layer, on_cuda)),
        Measurement(statistics.median(baseline_times) * 1e3, _memory_mib(baseline, on_cuda)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(
        f"device={device} threads={torch.get_num_threads()} batch={args.batch} width={args.width} "
        f"torch={torch.__version__}"
    )
    print("| layer | T | ms fwd+bwd | baseline ms | ratio | memory MiB | baseline MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        x = torch.randn(args.batch, length, args.width, device=device, requires_grad=True)
        lengths = torch.randint(length // 2, length + 1, (args.batch,), device=device)
        lengths[0] = length
        mask = torch.arange(length, device=device)[None, :] < lengths[:, None]
        baselines = {kind: build(args.width).to(device) for kind, build in BASELINES.items()}
        for case in CASES:
            layer = case.build(args.width, length).to(device)
            baseline = baselines[case.baseline]
            result, base = measure_beside(
                partial(case.run, layer, x, mask),
                partial(baseline, x, mask),
                x.is_cuda,
                args.repeats,
            )
            print(
                f"| {case.name} | {length} | {result.milliseconds:.2f} | {base.milliseconds:.2f} "
                f"({case.baseline}) | {result.milliseconds / base.milliseconds:.2f} | {result.memory_mib:.1f} "
                f"| {base.memory_mib:.1f} |"
            )


if __name__ == "__main__":
    main()
