"""Shared parts of the structured methods (heads, ffn, layers): options, importance batches, artefacts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from analysis.core.config import ConfigBase, check
from analysis.core.precision import autocast
from analysis.data.tokens import accepts_token_types, iterate
from analysis.methods.pruning.base import PruneContext, PruningMethod
from analysis.models.compact import record_structure, structure_of
from analysis.training.loop import task_loss, to_device


@dataclass(frozen=True)
class StructuredOptions(ConfigBase):
    start: str = "finetuned"  # prune the dense fine-tuned model (Michel et al.), or the pre-trained one
    retrain: bool = True  # fine-tune the compacted model afterwards with the run's training settings
    importance_examples: int = 512  # training examples used to score heads / neurons
    rounds: int = 1  # iterative pruning: importance is recomputed before each round

    def validate(self) -> None:
        check(self.start in ("pretrained", "finetuned"), "start", f"got {self.start!r}", "use pretrained or finetuned")
        check(self.importance_examples >= 1, "importance_examples", f"got {self.importance_examples}", "use >= 1")
        check(self.rounds >= 1, "rounds", f"got {self.rounds}", "use 1 or more")


class Structured(PruningMethod):
    Options = StructuredOptions

    def needs_teacher(self, options: StructuredOptions) -> bool:
        return options.start == "finetuned"

    def trains(self, options: StructuredOptions) -> bool:
        return options.retrain

    def save_artefacts(self, ctx: PruneContext, model: nn.Module) -> None:
        save_structure(ctx, model)


def save_structure(ctx: PruneContext, model: nn.Module) -> None:
    """Record the compacted shape in the config (for reloading) and store it with the selections."""
    record_structure(model)
    ctx.run.save_json("structure", {**structure_of(model), **ctx.artefacts})


def importance_batches(ctx: PruneContext, model: nn.Module, batch_size: int = 32) -> Iterator[dict[str, torch.Tensor]]:
    """Seeded training batches (with labels) for importance scores."""
    enc = ctx.inputs.train
    n = min(len(enc), ctx.options.importance_examples)
    rng = np.random.default_rng(ctx.config.seed)
    chosen = np.sort(rng.permutation(len(enc))[:n])
    device = next(model.parameters()).device
    labels = torch.from_numpy(enc.labels)
    with_types = accepts_token_types(model)
    for idx, batch in iterate(enc, batch_size, ctx.inputs.task.pad_id, with_types, shuffle=False):
        keep = np.isin(idx, chosen)
        if keep.any():
            sub = {k: v[torch.from_numpy(keep)] for k, v in batch.items()}
            yield {**to_device(sub, device), "labels": labels[idx[keep]].to(device)}


def batch_loss(ctx: PruneContext):
    """Task loss of a labelled batch (what importance differentiates)."""
    precision = ctx.config.train.precision

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with autocast(next(model.parameters()).device, precision):
            return task_loss(model(**inputs), batch["labels"], ctx.inputs.task)

    return loss


def round_targets(total_units: int, sparsity: float, rounds: int) -> list[int]:
    """How many units are pruned after each round (evenly spaced up to round(sparsity * total))."""
    final = int(round(sparsity * total_units))
    return [int(round(final * (r + 1) / rounds)) for r in range(rounds)]


def to_lists(mapping: dict[int, Any]) -> dict[str, list[int]]:
    return {str(k): [int(x) for x in v] for k, v in mapping.items()}
