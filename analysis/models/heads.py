"""Attention heads: our own gates (transformers v5 removed head_mask), Michel et al. importance,
integrated gradients on the gates (captum), and physical removal of heads.

A gate g[l, h] multiplies head h's slice of the context vector entering layer l's attention-output
projection, which is exactly the head's contribution to the layer output.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from analysis.models.arch import Arch


class HeadGates:
    """Multiplicative gates on every head (ones = the identity). `gates` is a (layers, heads) tensor."""

    def __init__(self, model: nn.Module, requires_grad: bool = False):
        self.arch = Arch(model)
        device = next(model.parameters()).device
        self.heads_per_layer = [self.arch.linear(i, "attn_out").in_features // self.arch.head_dim
                                for i in range(self.arch.num_layers)]
        self.gates = torch.ones(self.arch.num_layers, max(self.heads_per_layer), device=device,
                                requires_grad=requires_grad)
        self.example_gates: torch.Tensor | None = None  # (batch, layers, heads): one gate per example
        self._handles = [self.arch.linear(i, "attn_out").register_forward_pre_hook(self._hook(i))
                         for i in range(self.arch.num_layers)]

    def _hook(self, layer: int) -> Callable[..., Any]:
        def pre(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            x = args[0]
            heads = self.heads_per_layer[layer]
            gate = self.gates[layer, :heads].to(x.dtype).repeat_interleave(self.arch.head_dim)
            if self.example_gates is not None:
                per_example = self.example_gates[:, layer, :heads].to(x.dtype).repeat_interleave(self.arch.head_dim, -1)
                gate = gate * per_example[:, None, :]
            return (x * gate,) + tuple(args[1:])

        return pre

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    def __enter__(self) -> "HeadGates":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def head_importance(model: nn.Module, batches: Any, loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
                    normalise: bool = True, per_example: bool = True) -> np.ndarray:
    """Michel et al. (2019): I_h = E_x |dL(x)/d g_h|, L2-normalised within each layer. (layers, heads).

    Per example by default (the paper's formula): each example gets its own gates, so one backward pass of
    the summed loss yields every per-example gradient. `per_example=False` takes |d(mean batch loss)/dg|
    per batch instead, as the authors' released code does."""
    was_training = model.training
    model.eval()
    with HeadGates(model, requires_grad=not per_example) as gates, frozen_parameters(model):
        total = torch.zeros_like(gates.gates, requires_grad=False)
        count = 0
        for batch in batches:
            size = len(batch["input_ids"])
            if per_example:
                gates.example_gates = torch.ones((size,) + tuple(gates.gates.shape), device=gates.gates.device,
                                                 requires_grad=True)
                (grad,) = torch.autograd.grad(loss_fn(model, batch) * size, gates.example_gates)
                total += grad.abs().sum(0)
                count += size
            else:
                (grad,) = torch.autograd.grad(loss_fn(model, batch), gates.gates)
                total += grad.abs()
                count += 1
        importance = (total / max(1, count)).detach().cpu().numpy()
    model.train(was_training)
    if normalise:
        norms = np.linalg.norm(importance, axis=1, keepdims=True)
        importance = importance / np.where(norms == 0, 1, norms)
    return importance


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad for the block (only gate/input gradients are wanted), then are restored."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@dataclass
class GateAttribution:
    """Integrated gradients of a per-example output w.r.t. the head gates (path: all gates 0 -> all gates 1)."""

    importance: np.ndarray  # (layers, heads): E_x |IG_x(h)|
    mean: np.ndarray  # (layers, heads): E_x IG_x(h), signed
    deltas: np.ndarray  # (examples,): sum_h IG_x(h) - (F_x(1) - F_x(0)), captum's convergence delta
    totals: np.ndarray  # (examples,): F_x(1) - F_x(0), what the attributions must add up to
    n_steps: int

    @property
    def relative_delta(self) -> float:
        """Mean |delta| over mean |F(1) - F(0)|: the integration error relative to what is attributed."""
        return float(np.abs(self.deltas).mean() / max(np.abs(self.totals).mean(), 1e-12))


def gate_integrated_gradients(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                              example_outputs: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
                              n_steps: int = 16, internal_batch_size: int | None = None) -> GateAttribution:
    """Captum integrated gradients on per-example head gates; `example_outputs` returns one scalar per example
    (e.g. the per-example loss). Completeness: the gates' attributions add up to F(all on) - F(all off)."""
    from captum.attr import IntegratedGradients

    was_training = model.training
    model.eval()
    sums, abs_sums, deltas, totals = None, None, [], []
    with HeadGates(model) as gates, frozen_parameters(model):
        shape = tuple(gates.gates.shape)
        for batch in batches:
            keys = list(batch)

            def forward(example_gates: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
                gates.example_gates = example_gates
                try:
                    return example_outputs(model, dict(zip(keys, values))).float()
                finally:
                    gates.example_gates = None

            ones = torch.ones((len(batch[keys[0]]),) + shape, device=gates.gates.device)
            attr, delta = IntegratedGradients(forward).attribute(
                ones, baselines=torch.zeros_like(ones), additional_forward_args=tuple(batch.values()),
                n_steps=n_steps, internal_batch_size=internal_batch_size, return_convergence_delta=True)
            attr = attr.detach()
            sums = attr.sum(0) if sums is None else sums + attr.sum(0)
            abs_sums = attr.abs().sum(0) if abs_sums is None else abs_sums + attr.abs().sum(0)
            deltas.append(delta.detach().cpu().numpy())
            totals.append((attr.flatten(1).sum(1) - delta.detach()).cpu().numpy())
    model.train(was_training)
    if sums is None or abs_sums is None:
        raise ValueError("no batches to attribute")
    count = sum(len(d) for d in deltas)
    return GateAttribution((abs_sums / count).cpu().numpy(), (sums / count).cpu().numpy(), np.concatenate(deltas),
                           np.concatenate(totals), n_steps)


def on_original_heads(values: np.ndarray, head_ids: list[list[int]], num_heads: int) -> np.ndarray:
    """Scores of a (possibly head-pruned) model on the original (layers, num_heads) grid; removed heads are NaN.

    `head_ids[l]` are the original indices of layer l's remaining heads, in their current order."""
    grid = np.full((len(head_ids), num_heads), np.nan, dtype=np.float64)
    for layer, ids in enumerate(head_ids):
        grid[layer, ids] = values[layer, :len(ids)]
    return grid


@torch.no_grad()
def remove_heads_(model: nn.Module, keep: dict[int, list[int]]) -> None:
    """Physically remove heads: slice Q/K/V output rows and the attention-output input columns."""
    arch = Arch(model)
    d = arch.head_dim
    for layer, heads in keep.items():
        idx = torch.cat([torch.arange(h * d, (h + 1) * d) for h in sorted(heads)]) if heads else torch.zeros(0, dtype=torch.long)
        for kind in ("query", "key", "value"):
            _slice_linear_(arch.linear(layer, kind), idx, dim=0)
        _slice_linear_(arch.linear(layer, "attn_out"), idx, dim=1)
        attention = _attention_module(arch, layer)
        for attr in ("num_attention_heads", "n_heads"):
            if hasattr(attention, attr):
                setattr(attention, attr, len(heads))
        if hasattr(attention, "all_head_size"):
            attention.all_head_size = len(heads) * d


def _attention_module(arch: Arch, layer: int) -> nn.Module:
    """The module that owns the Q/K/V projections (its head count attributes are kept in sync)."""
    path = getattr(arch.spec, "query").rsplit(".", 1)[0]
    module = arch.layers()[layer]
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _slice_linear_(linear: nn.Linear, idx: torch.Tensor, dim: int) -> None:
    """Keep rows (dim 0: output features) or columns (dim 1: input features) `idx` of a Linear, in place."""
    idx = idx.to(linear.weight.device)
    linear.weight = nn.Parameter(linear.weight.index_select(dim, idx).clone())
    if dim == 0:
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.index_select(0, idx).clone())
        linear.out_features = len(idx)
    else:
        linear.in_features = len(idx)


def kept_heads(model: nn.Module) -> list[int]:
    """Heads per layer as the model is now (fewer than the config's count after removal)."""
    arch = Arch(model)
    return [arch.linear(i, "attn_out").in_features // arch.head_dim for i in range(arch.num_layers)]
