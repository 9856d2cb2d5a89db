"""Shared machinery of the unstructured methods (magnitude, gradual-magnitude, sparsebert, random).

They differ only in defaults: the criterion (|w| or random), the schedule (one-shot or cubic), where the
student starts (pre-trained or fine-tuned) and whether it is distilled from the dense fine-tuned teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from analysis.core.config import check
from analysis.methods.pruning.base import PruneContext, PruningMethod
from analysis.methods.pruning.masks import (
    Masks,
    ScheduledMaskHook,
    check_masks_fit,
    load_masks,
    magnitude_scores,
    masks_from_weights,
    random_scores,
)
from analysis.models.arch import Arch
from analysis.training.distill import DistillHook, DistillOptions
from analysis.training.loop import Hook


@dataclass(frozen=True)
class UnstructuredOptions(DistillOptions):
    schedule: str = "cubic"  # cubic | one-shot
    scope: str = "per-tensor"  # per-tensor | global
    update_every: int = 10  # steps between mask updates (the paper's 12-epoch MRPC run used 800)
    ramp_start: float = 0.0  # fraction of training where the cubic ramp starts
    ramp_end: float = 1.0  # ... and ends (the paper ramps over the whole training)
    masks: str | None = None  # fixed masks (a .safetensors file or a pruning run id): a lottery-ticket style retrain

    def validate(self) -> None:
        super().validate()
        check(self.schedule in ("cubic", "one-shot"), "schedule", f"got {self.schedule!r}", "use cubic or one-shot")
        check(self.scope in ("per-tensor", "global"), "scope", f"got {self.scope!r}", "use per-tensor or global")
        check(self.update_every >= 1, "update_every", f"got {self.update_every}", "use 1 or more steps")
        check(0 <= self.ramp_start < self.ramp_end <= 1, "ramp_start", "need 0 <= ramp_start < ramp_end <= 1",
              "e.g. --ramp-start 0 --ramp-end 0.7")


def prunable_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """Q, K, V, attention-output, FFN-in and FFN-out weights of every layer (not biases, LayerNorm, embeddings)."""
    return {prefix + ".weight": linear.weight for prefix, linear in Arch(model).linears().items()}


class Unstructured(PruningMethod):
    """Masks on the six weight matrices of every layer, selected by `scores`, kept at zero by a hook."""

    Options = UnstructuredOptions
    criterion = "magnitude"

    def needs_teacher(self, options: UnstructuredOptions) -> bool:
        return options.distill or options.start == "finetuned"

    def score_fn(self, seed: int):
        return magnitude_scores if self.criterion == "magnitude" else random_scores(seed)

    def check(self, options: UnstructuredOptions, model: nn.Module) -> None:
        if options.masks:
            self.given_masks(options, model)

    @staticmethod
    def given_masks(options: UnstructuredOptions, model: nn.Module) -> Masks:
        """The --masks option, checked against this model's prunable tensors (names and shapes)."""
        assert options.masks is not None
        masks = load_masks(options.masks)
        check_masks_fit(prunable_params(model), masks, f"the masks of {options.masks}")
        return masks

    def hooks(self, ctx: PruneContext) -> list[Hook]:
        o: UnstructuredOptions = ctx.options
        fixed = self.given_masks(o, ctx.student) if o.masks else None
        self.mask_hook = ScheduledMaskHook(prunable_params(ctx.student), self.score_fn(ctx.config.seed),
                                           ctx.config.sparsity, o.scope, o.schedule, o.update_every,
                                           o.ramp_start, o.ramp_end, fixed=fixed)
        hooks: list[Hook] = [self.mask_hook]
        if o.distill:
            hooks.insert(0, self.distill_hook(ctx))
        return hooks

    @staticmethod
    def distill_hook(ctx: PruneContext) -> DistillHook:
        assert ctx.teacher is not None
        return DistillHook(ctx.teacher, ctx.inputs.task, ctx.options.weights(), cache_key=ctx.teacher_cache_key())

    def save_artefacts(self, ctx: PruneContext, model: nn.Module) -> None:
        masks = masks_from_weights(prunable_params(model))
        ctx.run.save_arrays("masks", {k: v.cpu().numpy().astype(np.uint8) for k, v in masks.items()})
        ctx.run.save_json("mask_schedule", [{"step": s, "sparsity": v} for s, v in self.mask_hook.history])


def with_defaults(**defaults: Any) -> type[UnstructuredOptions]:
    """An options class whose defaults are a method's own (the fields stay the same across methods)."""
    import dataclasses

    fields = [(f.name, f.type, dataclasses.field(default=defaults.get(f.name, f.default)))
              for f in dataclasses.fields(UnstructuredOptions)]
    return dataclasses.make_dataclass("Options", fields, bases=(UnstructuredOptions,), frozen=True)
