"""A sparse execution path for unstructured pruning: the encoder's masked Linear layers run as CSR
sparse x dense matrix products (torch's MKL-backed kernel on CPU), so 90% zeros can save time for real."""

from __future__ import annotations

import torch
from torch import nn

from .arch import MODULE_TYPES, Arch


class CSRLinear(nn.Module):
    """y = x W^T + b with W stored in CSR (fp32): only the non-zeros are touched."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_csr = linear.weight.detach().float().to_sparse_csr()
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(self.out_features)
        self.register_buffer("bias_column", bias.unsqueeze(1).contiguous())

    @property
    def density(self) -> float:
        return self.weight_csr.values().numel() / (self.in_features * self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (W x^T + b) with x^T contiguous: MKL's sparse x dense path (addmm is its fastest entry here)
        flat_t = x.reshape(-1, self.in_features).float().t().contiguous()
        out = torch.addmm(self.bias_column, self.weight_csr, flat_t).t()
        return out.reshape(*x.shape[:-1], self.out_features)


def _parent_and_name(module: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, name = path.split(".")
    for part in parents:
        module = getattr(module, part)
    return module, name


@torch.no_grad()
def to_sparse_execution_(model: nn.Module, min_sparsity: float = 0.5) -> int:
    """Swap every prunable Linear at least `min_sparsity` zero for a CSRLinear (inference only). Returns how many."""
    arch = Arch(model)
    swapped = 0
    for i, layer in enumerate(arch.layers()):
        for kind in MODULE_TYPES:
            linear = arch.linear(i, kind)
            if isinstance(linear, nn.Linear) and float((linear.weight == 0).float().mean()) >= min_sparsity:
                parent, name = _parent_and_name(layer, getattr(arch.spec, kind))
                setattr(parent, name, CSRLinear(linear))
                swapped += 1
    return swapped
