"""A sparse execution path for unstructured pruning: the encoder's masked Linear layers run as CSR sparse x
dense products, so 90% zeros save time for real.

Two kernels, both real sparse products that touch only the non-zeros:
- `numba` (default): our CSR x dense kernel, JIT-compiled by numba (LLVM, vectorised over tokens, parallel
  over output rows, token tiles that stay in cache, four non-zeros per pass over a tile);
- `mkl`: torch's MKL-backed `addmm` on a `torch.sparse_csr` weight (slower here: see NOTES.md).
Inference only, fp32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from analysis.core.errors import ConfigError
from analysis.models.arch import MODULE_TYPES, Arch

KERNELS = ("numba", "mkl")
TOKEN_TILE = 1024  # tokens per tile: one output-row tile (4 KB) stays in L1, the input rows stream from L2


def _numba_kernel():
    """Compile (once, cached on disk) out[r, :] = bias[r] + sum_k w[k] * xt[col[k], :] over CSR rows."""
    from numba import njit, prange

    @njit(parallel=True, fastmath=True, cache=True)
    def csr_times_dense_t(indptr, indices, data, xt, bias, out, tile):  # pragma: no cover (compiled)
        tokens = xt.shape[1]
        for r in prange(indptr.shape[0] - 1):
            b = bias[r]
            start, end = indptr[r], indptr[r + 1]
            for t0 in range(0, tokens, tile):
                t1 = min(tokens, t0 + tile)
                n = t1 - t0
                acc = out[r, t0:t1]
                acc[:] = b
                k = start
                while k + 4 <= end:  # four non-zeros per pass: one load and store of acc per four FMAs
                    w0, w1, w2, w3 = data[k], data[k + 1], data[k + 2], data[k + 3]
                    x0, x1 = xt[indices[k], t0:t1], xt[indices[k + 1], t0:t1]
                    x2, x3 = xt[indices[k + 2], t0:t1], xt[indices[k + 3], t0:t1]
                    for t in range(n):
                        acc[t] += w0 * x0[t] + w1 * x1[t] + w2 * x2[t] + w3 * x3[t]
                    k += 4
                while k < end:
                    w = data[k]
                    x0 = xt[indices[k], t0:t1]
                    for t in range(n):
                        acc[t] += w * x0[t]
                    k += 1

    return csr_times_dense_t


_KERNEL = None


def numba_kernel():
    global _KERNEL
    if _KERNEL is None:
        try:
            _KERNEL = _numba_kernel()
        except ImportError as exc:  # pragma: no cover (numba is a requirement)
            raise ConfigError("the numba sparse kernel needs the numba package", fix="pip install numba, or "
                              "use kernel='mkl'") from exc
    return _KERNEL


class CSRLinear(nn.Module):
    """y = x W^T + b with W stored in CSR (fp32): only the non-zeros are touched."""

    def __init__(self, linear: nn.Linear, kernel: str = "numba"):
        super().__init__()
        if kernel not in KERNELS:
            raise ConfigError(f"unknown sparse kernel {kernel!r}", fix=f"use one of {', '.join(KERNELS)}")
        self.kernel = kernel
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_csr = linear.weight.detach().float().cpu().to_sparse_csr()
        bias = linear.bias.detach().float().cpu() if linear.bias is not None else torch.zeros(self.out_features)
        self.register_buffer("bias_column", bias.unsqueeze(1).contiguous())
        self._csr_numpy = (self.weight_csr.crow_indices().numpy().astype(np.int32),
                           self.weight_csr.col_indices().numpy().astype(np.int32),
                           self.weight_csr.values().numpy(), bias.numpy())

    @property
    def density(self) -> float:
        return self.weight_csr.values().numel() / (self.in_features * self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # W x^T with x^T contiguous: every non-zero w[r, k] adds w * (row k of x^T) to row r, vectorised over tokens
        flat_t = x.reshape(-1, self.in_features).float().t().contiguous()
        if self.kernel == "mkl":
            out = torch.addmm(self.bias_column, self.weight_csr, flat_t)
        else:
            import numba

            threads = torch.get_num_threads()
            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
            out_np = np.empty((self.out_features, flat_t.shape[1]), dtype=np.float32)
            numba_kernel()(*self._csr_numpy[:3], flat_t.numpy(), self._csr_numpy[3], out_np, TOKEN_TILE)
            if torch.get_num_threads() != threads:  # numba's first call starts an OpenMP pool that resets
                torch.set_num_threads(threads)  # the process-wide count torch reads: put the caller's back
            out = torch.from_numpy(out_np)
        return out.t().reshape(*x.shape[:-1], self.out_features)


def _parent_and_name(module: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, name = path.split(".")
    for part in parents:
        module = getattr(module, part)
    return module, name


@torch.no_grad()
def to_sparse_execution_(model: nn.Module, min_sparsity: float = 0.5, kernel: str = "numba") -> int:
    """Swap every prunable Linear at least `min_sparsity` zero for a CSRLinear (inference only). Returns how many."""
    arch = Arch(model)
    swapped = 0
    for i, layer in enumerate(arch.layers()):
        for kind in MODULE_TYPES:
            linear = arch.linear(i, kind)
            if isinstance(linear, nn.Linear) and float((linear.weight == 0).float().mean()) >= min_sparsity:
                parent, name = _parent_and_name(layer, getattr(arch.spec, kind))
                setattr(parent, name, CSRLinear(linear, kernel))
                swapped += 1
    return swapped
