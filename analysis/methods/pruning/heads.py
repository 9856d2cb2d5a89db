"""Attention-head pruning by Michel et al. (2019) importance, iterative, with physical removal."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from analysis.methods.pruning.base import PRUNING_METHODS, PruneContext
from analysis.methods.pruning.structured import (
    Structured,
    StructuredOptions,
    batch_loss,
    importance_batches,
    round_targets,
    to_lists,
)
from analysis.models.heads import HeadGates, head_importance, remove_heads_


@PRUNING_METHODS.register("heads")
class HeadPruning(Structured):
    """Prune `sparsity` of all heads, least important first (|dL/dgate|, normalised per layer), then remove them.

    With `--rounds R`, importance is recomputed R times with the already-pruned heads gated off
    (Michel et al. prune 10% of heads per round).
    """

    order = 70
    removes = True
    encoder_share = 0.5  # its sparsity is over Q/K/V/O (heads) or the FFN: half of each layer

    Options = StructuredOptions

    def before_training(self, ctx: PruneContext) -> nn.Module:
        model = ctx.student.to(torch.device(ctx.run.device))
        pruned: set[tuple[int, int]] = set()
        importance = None
        for target in round_targets(self._num_heads(model), ctx.config.sparsity, ctx.options.rounds):
            importance = self._importance(ctx, model, pruned)
            order = [divmod(int(i), importance.shape[1]) for i in np.argsort(importance, axis=None, kind="stable")]
            per_layer = importance.shape[1]
            for unit in order:
                if len(pruned) >= target:
                    break
                emptied = sum(1 for layer, _ in pruned if layer == unit[0]) + 1 >= per_layer
                if unit not in pruned and not emptied:  # every layer keeps at least one head
                    pruned.add(unit)
        num_layers, num_heads = importance.shape if importance is not None else (0, 0)
        keep = {l: [h for h in range(num_heads) if (l, h) not in pruned] for l in range(num_layers)}
        remove_heads_(model, keep)
        ctx.artefacts.update({"kept_heads": to_lists(keep), "importance": importance.tolist() if importance is not None else []})
        return model

    @staticmethod
    def _num_heads(model: nn.Module) -> int:
        gates = HeadGates(model)
        gates.remove()
        return int(sum(gates.heads_per_layer))

    @staticmethod
    def _importance(ctx: PruneContext, model: nn.Module, pruned: set[tuple[int, int]]) -> np.ndarray:
        """Importance with already-pruned heads gated to zero (they score 0 and stay pruned)."""
        with HeadGates(model) as off:
            for layer, head in pruned:
                off.gates[layer, head] = 0.0
            importance = head_importance(model, importance_batches(ctx, model), batch_loss(ctx))
        for layer, head in pruned:
            importance[layer, head] = -1.0
        return importance
