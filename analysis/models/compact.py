"""Physical compaction: remove FFN neurons, attention heads and whole layers for real, and record the
resulting structure in the config so a compacted checkpoint loads back (`structure_of` / `apply_structure_`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from analysis.models.arch import Arch
from analysis.models.heads import _slice_linear_, kept_heads, remove_heads_

STRUCTURE_KEY = "prunescope_structure"


@torch.no_grad()
def remove_ffn_neurons_(model: nn.Module, keep: dict[int, torch.Tensor]) -> None:
    """Keep FFN neurons `keep[layer]` (indices): rows of FFN-in, columns of FFN-out."""
    arch = Arch(model)
    for layer, idx in keep.items():
        idx = torch.as_tensor(idx, dtype=torch.long).sort().values
        _slice_linear_(arch.linear(layer, "ffn_in"), idx, dim=0)
        _slice_linear_(arch.linear(layer, "ffn_out"), idx, dim=1)


def drop_layers_(model: nn.Module, keep: list[int]) -> None:
    """Keep only the transformer layers `keep` (in order) and update the layer count in the config."""
    arch = Arch(model)
    layers = arch.layers()
    kept = nn.ModuleList([layers[i] for i in sorted(keep)])
    parent_path, name = arch.spec.layers.rsplit(".", 1)
    parent = arch.base
    for part in parent_path.split("."):
        parent = getattr(parent, part)
    setattr(parent, name, kept)
    setattr(model.config, arch.spec.layers_attr, len(kept))
    for i, layer in enumerate(kept):  # v5 layers carry their index for caches; keep them consistent
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i


def structure_of(model: nn.Module) -> dict[str, Any]:
    arch = Arch(model)
    return {"heads": kept_heads(model),
            "ffn": [arch.linear(i, "ffn_in").out_features for i in range(arch.num_layers)]}


def record_structure(model: nn.Module) -> None:
    """Write the per-layer head and FFN sizes into the config (saved with the checkpoint)."""
    setattr(model.config, STRUCTURE_KEY, structure_of(model))


@torch.no_grad()
def apply_structure_(model: nn.Module, structure: dict[str, Any]) -> None:
    """Shrink a freshly built model to a recorded structure (its weights are then loaded over it)."""
    heads, ffn = structure["heads"], structure["ffn"]
    arch = Arch(model)
    if len(heads) != arch.num_layers:
        raise ValueError(f"structure has {len(heads)} layers, the model {arch.num_layers}")
    remove_heads_(model, {i: list(range(n)) for i, n in enumerate(heads)})
    remove_ffn_neurons_(model, {i: torch.arange(n) for i, n in enumerate(ffn)})
