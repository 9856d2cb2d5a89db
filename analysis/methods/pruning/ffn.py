"""FFN neuron pruning by importance (|dL/dgate| on each neuron's activation), with physical removal."""

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
)
from analysis.models.arch import Arch
from analysis.models.compact import remove_ffn_neurons_


def neuron_importance(ctx: PruneContext, model: nn.Module) -> list[np.ndarray]:
    """Per layer, E|dL/dg| for a gate g = 1 on each intermediate neuron (first-order Taylor importance)."""
    arch = Arch(model)
    gates = [torch.ones(arch.linear(i, "ffn_in").out_features, device=next(model.parameters()).device,
                        requires_grad=True) for i in range(arch.num_layers)]
    handles = [arch.linear(i, "ffn_in").register_forward_hook(lambda m, a, out, g=g: out * g.to(out.dtype))
               for i, g in enumerate(gates)]
    totals = [torch.zeros_like(g) for g in gates]
    was_training = model.training
    model.eval()
    loss_fn = batch_loss(ctx)
    try:
        for batch in importance_batches(ctx, model):
            grads = torch.autograd.grad(loss_fn(model, batch), gates)
            for total, grad in zip(totals, grads):
                total += grad.abs()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [t.detach().cpu().numpy() for t in totals]


@PRUNING_METHODS.register("ffn")
class FfnPruning(Structured):
    """Remove `sparsity` of the intermediate neurons in every layer (uniform per layer), least important first."""

    order = 80
    removes = True
    encoder_share = 0.5  # its sparsity is over Q/K/V/O (heads) or the FFN: half of each layer

    Options = StructuredOptions

    def before_training(self, ctx: PruneContext) -> nn.Module:
        model = ctx.student.to(torch.device(ctx.run.device))
        arch = Arch(model)
        original = [arch.linear(i, "ffn_in").out_features for i in range(arch.num_layers)]
        for target in round_targets(1000, ctx.config.sparsity, ctx.options.rounds):  # per-mille of each layer
            scores = neuron_importance(ctx, model)
            keep = {layer: np.sort(np.argsort(-s, kind="stable")[:max(1, full - int(round(full * target / 1000)))])
                    for layer, (s, full) in enumerate(zip(scores, original))}
            remove_ffn_neurons_(model, {k: torch.as_tensor(v) for k, v in keep.items()})
        ctx.artefacts["kept_neurons_per_layer"] = [arch.linear(i, "ffn_in").out_features for i in range(arch.num_layers)]
        return model
