"""The small-dense counterpart: fewer layers and/or narrower FFNs, initialised from the pre-trained model
and distilled with the same losses as SparseBERT, built to the same non-zero encoder parameter budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from analysis.methods.pruning.base import PRUNING_METHODS, PruneContext, PruningMethod
from analysis.methods.pruning.layers import layers_to_keep
from analysis.methods.pruning.structured import save_structure
from analysis.models.arch import Arch
from analysis.models.compact import drop_layers_, remove_ffn_neurons_
from analysis.models.heads import remove_heads_
from analysis.models.sparsity import encoder_linear_params
from analysis.training.distill import DistillHook, DistillOptions
from analysis.training.loop import Hook


@dataclass(frozen=True)
class SmallDenseOptions(DistillOptions):
    distill: bool = True  # distilled with the same losses as SparseBERT
    # with fewer heads than the teacher: distil the kept heads' attention from the same teacher heads (they are the
    # first heads of each kept layer); off, the narrower student gets no attention loss (hidden + prediction only)
    map_heads: bool = False


@dataclass(frozen=True)
class Shape:
    layers: list[int]
    heads: int
    ffn: int


def plan_shape(hidden: int, heads: int, head_dim: int, ffn: int, num_layers: int, budget: int) -> Shape:
    """Fewest layers that can hold the budget, then FFN (and, below one attention block, heads) narrowed to fit."""
    attention = 4 * hidden * heads * head_dim
    per_layer = attention + 2 * hidden * ffn
    depth = max(1, min(num_layers, math.ceil(budget / per_layer)))
    share = budget / depth
    kept_heads = heads
    if share < attention:
        kept_heads = max(1, int(share // (4 * hidden * head_dim)))
    width = max(1, int((share - 4 * hidden * kept_heads * head_dim) // (2 * hidden)))
    return Shape(layers_to_keep(num_layers, num_layers - depth, "spread"), kept_heads, min(ffn, width))


@PRUNING_METHODS.register("small-dense")
class SmallDense(PruningMethod):
    """A small dense model with as many non-zero encoder weights as the sparse ones (fewer layers or a narrower FFN), distilled from the teacher."""

    order = 60
    removes = True

    Options = SmallDenseOptions

    def needs_teacher(self, options: SmallDenseOptions) -> bool:
        return options.distill or options.start == "finetuned"

    def before_training(self, ctx: PruneContext) -> nn.Module:
        model = ctx.student
        arch = Arch(model)
        budget = int(round((1 - ctx.config.sparsity) * encoder_linear_params(model)))
        ffn = arch.linear(0, "ffn_in").out_features
        shape = plan_shape(arch.hidden_size, arch.num_heads, arch.head_dim, ffn, arch.num_layers, budget)
        drop_layers_(model, shape.layers)
        remove_heads_(model, {i: list(range(shape.heads)) for i in range(len(shape.layers))})
        remove_ffn_neurons_(model, {i: _top_neurons(model, i, shape.ffn) for i in range(len(shape.layers))})
        self.shape = shape
        ctx.artefacts.update({"kept_layers": shape.layers, "heads_per_layer": shape.heads,
                              "ffn_width": shape.ffn, "budget": budget})
        return model

    def hooks(self, ctx: PruneContext) -> list[Hook]:
        o: SmallDenseOptions = ctx.options
        if not o.distill:
            return []
        assert ctx.teacher is not None
        same_heads = self.shape.heads == Arch(ctx.teacher).num_heads
        # attention scores are matched head for head: every head kept, or the kept heads mapped to their teacher heads
        matched = same_heads or o.map_heads
        weights = o.weights(attention=matched)
        ctx.artefacts["attention_loss_used"] = matched and o.attention_weight > 0
        head_map = None if same_heads else self.kept_head_map()
        return [DistillHook(ctx.teacher, ctx.inputs.task, weights, layer_map=list(self.shape.layers),
                            cache_key=ctx.teacher_cache_key(), head_map=head_map)]

    def kept_head_map(self) -> list[list[int]]:
        """Per student layer, the teacher heads its heads came from: the first `shape.heads` of the layer it kept
        (`before_training` keeps heads 0..k-1 of every kept layer, from a model with the teacher's heads)."""
        return [list(range(self.shape.heads)) for _ in self.shape.layers]

    def save_artefacts(self, ctx: PruneContext, model: nn.Module) -> None:
        save_structure(ctx, model)


def _top_neurons(model: nn.Module, layer: int, width: int) -> torch.Tensor:
    """The `width` intermediate neurons with the largest ||w_in|| * ||w_out|| (kept from the pre-trained model)."""
    arch = Arch(model)
    w_in, w_out = arch.linear(layer, "ffn_in").weight, arch.linear(layer, "ffn_out").weight
    score = w_in.norm(dim=1) * w_out.norm(dim=0)
    return torch.argsort(score, descending=True, stable=True)[:width]
