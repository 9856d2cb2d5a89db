"""Layer dropping: remove whole transformer layers (top, bottom, or evenly spaced)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from analysis.core.config import check
from analysis.methods.pruning.base import PRUNING_METHODS, PruneContext
from analysis.methods.pruning.structured import Structured, StructuredOptions
from analysis.models.arch import Arch
from analysis.models.compact import drop_layers_


@dataclass(frozen=True)
class LayerOptions(StructuredOptions):
    which: str = "top"  # top | bottom | spread (evenly spaced, like keeping every k-th layer)

    def validate(self) -> None:
        super().validate()
        check(self.which in ("top", "bottom", "spread"), "which", f"got {self.which!r}", "use top, bottom or spread")


def layers_to_keep(num_layers: int, drop: int, which: str) -> list[int]:
    keep = num_layers - drop
    if which == "top":  # drop the top layers, keep the bottom ones
        return list(range(keep))
    if which == "bottom":
        return list(range(drop, num_layers))
    return sorted({int(round(x)) for x in np.linspace(num_layers / keep - 1, num_layers - 1, keep)}) if keep else []


@PRUNING_METHODS.register("layers")
class LayerDropping(Structured):
    """Drop round(sparsity x layers) layers (at least one layer is always kept)."""

    order = 90
    removes = True

    Options = LayerOptions

    def before_training(self, ctx: PruneContext) -> nn.Module:
        total = Arch(ctx.student).num_layers
        drop = min(total - 1, int(round(ctx.config.sparsity * total)))
        keep = layers_to_keep(total, drop, ctx.options.which)
        drop_layers_(ctx.student, keep)
        ctx.artefacts["kept_layers"] = keep
        return ctx.student
