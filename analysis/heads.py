"""Attention heads: our own gates (transformers v5 removed head_mask), Michel et al. importance, and
physical removal of heads.

A gate g[l, h] multiplies head h's slice of the context vector entering layer l's attention-output
projection, which is exactly the head's contribution to the layer output.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .arch import Arch


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
    with HeadGates(model, requires_grad=not per_example) as gates:
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
    arch = Arch(model)
    return [arch.linear(i, "attn_out").in_features // arch.head_dim for i in range(arch.num_layers)]
