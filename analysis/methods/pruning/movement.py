"""Movement pruning (Sanh, Wolf & Rush 2020), hard variant: learned scores S, mask = TopK(S) with a
straight-through gradient, so S accumulates -W * dL/dW (weights moving away from zero are kept).
Cubic schedule as in the paper; optionally distilled from the dense teacher (`--distill`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from analysis.core.config import check
from analysis.core.errors import ConfigError
from analysis.methods.pruning.base import PRUNING_METHODS, PruneContext
from analysis.methods.pruning.masks import cubic_sparsity, keep_top
from analysis.methods.pruning.unstructured import Unstructured, UnstructuredOptions
from analysis.models.arch import Arch
from analysis.training.loop import Hook, TrainState


@dataclass(frozen=True)
class MovementOptions(UnstructuredOptions):
    scores_lr: float = 1e-2  # the paper's learning rate for the mask scores

    def validate(self) -> None:
        super().validate()
        check(self.scope == "per-tensor", "scope", "movement pruning selects within each tensor", "use per-tensor")
        check(self.scores_lr > 0, "scores_lr", f"got {self.scores_lr}", "use e.g. 1e-2")


class _TopKStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        return keep_top(scores, sparsity).to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _Masked(nn.Module):
    """weight -> weight * TopK(scores) at the hook's current sparsity."""

    def __init__(self, scores: torch.Tensor, hook: "MovementHook"):
        super().__init__()
        self.scores, self.hook = scores, hook

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * _TopKStraightThrough.apply(self.scores, self.hook.sparsity)


class MovementHook(Hook):
    def __init__(self, linears: list[nn.Linear], final: float, options: MovementOptions):
        self.linears, self.final, self.options = linears, final, options
        self.sparsity = 0.0
        self.history: list[tuple[int, float]] = []

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        self.scores = [torch.zeros_like(m.weight, requires_grad=True) for m in self.linears]
        for linear, scores in zip(self.linears, self.scores):
            parametrize.register_parametrization(linear, "weight", _Masked(scores, self))
        return [{"params": self.scores, "lr": self.options.scores_lr, "weight_decay": 0.0}]

    def before_step(self, state: TrainState) -> None:
        o = self.options
        self.sparsity = cubic_sparsity(state.step + 1, state.total_steps, self.final, 0.0, o.ramp_start, o.ramp_end)
        if not self.history or self.history[-1][1] != self.sparsity:
            self.history.append((state.step + 1, self.sparsity))

    def state_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "sparsity": self.sparsity, "history": [list(h) for h in self.history]}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for scores, saved in zip(self.scores, state["scores"], strict=True):
            scores.copy_(saved)  # in place: the optimizer holds these tensors
        self.sparsity = state["sparsity"]
        self.history = [(int(step), float(sparsity)) for step, sparsity in state["history"]]

    def on_train_end(self, state: TrainState) -> None:
        self.sparsity = self.final
        for linear in self.linears:  # bake W * mask into a plain weight again
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=True)


@PRUNING_METHODS.register("movement")
class Movement(Unstructured):
    """Movement pruning (Sanh et al.): learned scores S, top-k straight-through masks; weights that move away
    from zero are kept. The learned scores are stored (`movement_scores`) for the what-if explorer."""

    order = 40

    Options = MovementOptions

    def check(self, options: MovementOptions, model: nn.Module) -> None:
        if options.masks:
            raise ConfigError("movement pruning learns its masks; it does not take --masks",
                              fix="retrain fixed masks with --method magnitude --masks ...")

    def save_artefacts(self, ctx: PruneContext, model: nn.Module) -> None:
        super().save_artefacts(ctx, model)
        names = [prefix + ".weight" for prefix in Arch(model).linears()]
        ctx.run.save_arrays("movement_scores", {name: scores.detach().to(torch.float16).cpu().numpy()
                                                for name, scores in zip(names, self.mask_hook.scores, strict=True)})

    def hooks(self, ctx: PruneContext) -> list[Hook]:
        o: MovementOptions = ctx.options
        self.mask_hook = MovementHook(list(Arch(ctx.student).linears().values()), ctx.config.sparsity, o)
        hooks: list[Hook] = [self.mask_hook]
        if o.distill:
            hooks.insert(0, self.distill_hook(ctx))
        return hooks
