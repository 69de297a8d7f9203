"""A layer-by-layer table of a model: name, type, output shape and parameter count, with totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    """One module of the table: its dotted name, class, output shape(s) and the parameters it owns directly."""

    name: str
    type: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class ModelSummary:
    """The rows in call order (modules never called come last), and the model's totals."""

    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #")
        cells = [(f"{row.name} ({row.type})", row.output_shape, f"{row.params:,}") for row in self.rows]
        widths = [max(len(line[i]) for line in [header, *cells]) for i in range(3)]
        rule = "  ".join("-" * width for width in widths)
        lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), rule]
        lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
        lines += [
            rule,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
        ]
        return "\n".join(lines)


def _describe_output(output: object) -> str:
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        shapes = [_describe_output(item) for item in output]
        return ", ".join(shape for shape in shapes if shape)
    return ""


def _own_parameters(module: nn.Module, seen: set[int]) -> tuple[int, int]:
    """Parameters registered directly on ``module`` and not counted before (tied weights count once)."""
    total = trainable = 0
    for param in module.parameters(recurse=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return total, trainable


def summary(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor]) -> ModelSummary:
    """Run ``model`` once on ``example_input`` (a tensor, or a tuple of positional arguments) and tabulate it.

    A row is kept for every module that owns parameters or has no children, so the rows' parameter counts add up to
    the model's total. The model is run in eval mode and restored to its previous mode; gradients stay on, so every
    module runs as in training (a layer's inference form may skip a submodule: ReverseConv's gather skips its banks).
    """
    args = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    names = {module: name for name, module in model.named_modules()}
    shapes: dict[nn.Module, str] = {}
    call_order: list[nn.Module] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if module not in shapes:
            call_order.append(module)
        shapes[module] = _describe_output(output)

    handles = [module.register_forward_hook(record) for module in names]
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    ordered = call_order + [module for module in names if module not in shapes]
    seen: set[int] = set()
    rows, total, trainable = [], 0, 0
    for module in ordered:
        params, module_trainable = _own_parameters(module, seen)
        total += params
        trainable += module_trainable
        is_leaf = next(module.children(), None) is None
        if params or (is_leaf and module is not model):
            name = names[module] or type(module).__name__.lower()
            rows.append(LayerRow(name, type(module).__name__, shapes.get(module, "—"), params))
    return ModelSummary(tuple(rows), total, trainable)
