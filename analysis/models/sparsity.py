"""Sparsity accounting measured from the weights (never taken from the request).

Reports, side by side: per tensor, per layer x module type, encoder-linear sparsity (the figure papers
quote, e.g. "5% of weights remain") and whole-model sparsity (embeddings included); masked zeros vs
physically removed parameters; non-zero parameter count; FLOPs per example; size on disk.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from analysis.models.arch import MODULE_TYPES, Arch


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def encoder_linear_params(model: nn.Module) -> int:
    return int(sum(m.weight.numel() for m in Arch(model).linears().values()))


def sparsity_report(model: nn.Module, original_params: int | None = None,
                    original_encoder_params: int | None = None, seq_len: int = 128) -> dict[str, Any]:
    """Everything about how sparse and how small `model` is, computed from its current weights."""
    arch = Arch(model)
    tensors = {}
    for prefix, linear in arch.linears().items():
        w = linear.weight.detach()
        layer, kind = arch.locate(prefix + ".weight")
        zeros = int((w == 0).sum())
        tensors[prefix + ".weight"] = {"layer": layer, "module": kind, "numel": w.numel(), "zeros": zeros,
                                       "sparsity": zeros / max(1, w.numel())}
    enc_numel = sum(t["numel"] for t in tensors.values())
    enc_zeros = sum(t["zeros"] for t in tensors.values())
    total = count_params(model)
    total_zeros = int(sum((p.detach() == 0).sum() for p in model.parameters()))
    original_params = original_params or total
    original_encoder = original_encoder_params or enc_numel
    removed = original_params - total
    return {
        "tensors": tensors,
        "by_layer_module": by_layer_module(tensors, arch.num_layers),
        # measured against the original (dense, uncompacted) encoder: removed weights count as pruned
        "encoder_sparsity": 1 - (enc_numel - enc_zeros) / original_encoder,
        "encoder_masked_sparsity": enc_zeros / max(1, enc_numel),
        "model_sparsity": 1 - (total - total_zeros) / original_params,
        "nonzero_params": total - total_zeros,
        "encoder_nonzero_params": enc_numel - enc_zeros,
        "params": total, "original_params": original_params, "removed_params": removed,
        "masked_zeros": total_zeros, "encoder_params_original": original_encoder,
        "flops_per_example": flops_per_example(model, seq_len),
        "size_on_disk_bytes": {"dense_fp32": 4 * total, "sparse_csr_fp32": csr_bytes(model)},
        "num_layers": arch.num_layers,
    }


def by_layer_module(tensors: dict[str, dict[str, Any]], num_layers: int) -> list[list[float | None]]:
    """layers x MODULE_TYPES grid of sparsity within the tensor (None where a tensor is absent)."""
    grid: list[list[float | None]] = [[None] * len(MODULE_TYPES) for _ in range(num_layers)]
    for t in tensors.values():
        grid[t["layer"]][MODULE_TYPES.index(t["module"])] = t["sparsity"]
    return grid


def flops_per_example(model: nn.Module, seq_len: int) -> dict[str, float]:
    """Multiply-adds x2 of the encoder for one example of `seq_len` tokens: dense shapes, and non-zeros only."""
    arch = Arch(model)
    dense = nonzero = 0.0
    for linear in arch.linears().values():
        w = linear.weight
        dense += 2.0 * seq_len * w.numel()
        nonzero += 2.0 * seq_len * int((w != 0).sum())
    attention = 0.0
    for i in range(arch.num_layers):
        width = arch.linear(i, "query").weight.shape[0]  # heads x head_dim, after any head removal
        attention += 2.0 * 2 * seq_len * seq_len * width  # QK^T and AV
    return {"dense": dense + attention, "nonzero": nonzero + attention, "seq_len": seq_len}


def csr_bytes(model: nn.Module) -> int:
    """Bytes to store the model with the encoder linears in CSR (fp32 values, int32 indices)."""
    arch = Arch(model)
    linear_ids = {id(m.weight) for m in arch.linears().values()}
    total = 0
    for p in model.parameters():
        if id(p) in linear_ids:
            nnz = int((p != 0).sum())
            total += 8 * nnz + 4 * (p.shape[0] + 1)
        else:
            total += 4 * p.numel()
    return total


def compact_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The scalar part of a report, for run summaries and tables."""
    keys = ("encoder_sparsity", "encoder_masked_sparsity", "model_sparsity", "nonzero_params",
            "encoder_nonzero_params", "params", "original_params", "removed_params", "num_layers")
    out = {k: report[k] for k in keys}
    out["flops_dense"] = report["flops_per_example"]["dense"]
    out["flops_nonzero"] = report["flops_per_example"]["nonzero"]
    out["csr_bytes"] = report["size_on_disk_bytes"]["sparse_csr_fp32"]
    return out
