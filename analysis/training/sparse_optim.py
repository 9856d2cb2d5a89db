"""AdamW and gradient clipping for models whose embedding tables return sparse gradients (the LSTM baseline).

A dense AdamW step reads and writes every row of a 30k-word table each step, although a batch uses a few
hundred rows. `LazyAdamW` updates only the rows with a gradient (TensorFlow's LazyAdam, torch's SparseAdam):
their moments, their decoupled weight decay and their weights; a row nobody used keeps its weights and its
moments. Bias correction uses the optimizer's step count. Every dense parameter gets torch's AdamW as is.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn
from torch.optim.adamw import adamw


def sparse_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable weights of embedding tables built with sparse gradients (`nn.Embedding(sparse=True)`)."""
    return [m.weight for m in model.modules()
            if isinstance(m, nn.Embedding) and m.sparse and m.weight.requires_grad]


class LazyAdamW(torch.optim.AdamW):
    """torch's AdamW for dense parameters; groups marked `lazy` get the row-wise update of only the used rows."""

    def __init__(self, groups: list[dict[str, Any]], lazy: list[nn.Parameter], lr: float, weight_decay: float,
                 fused: bool | None = None):
        super().__init__(groups + [{"params": lazy, "weight_decay": weight_decay, "lazy": True}], lr=lr, fused=fused)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if closure is not None:
            raise NotImplementedError("LazyAdamW.step takes no closure")
        lazy = [(g, p, p.grad) for g in self.param_groups if g.get("lazy") for p in g["params"] if p.grad is not None]
        for _, p, _ in lazy:
            p.grad = None  # hidden from the dense step, which refuses sparse gradients
        try:
            super().step()
        finally:
            for _, p, grad in lazy:
                p.grad = grad
        for group, p, grad in lazy:
            self._rows_step(group, p, grad)
        return None

    def _rows_step(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor) -> None:
        """torch's AdamW step (same kernel as the dense groups) on the rows of `p` that `grad` touches."""
        if not grad.is_sparse:
            raise TypeError("a lazy parameter got a dense gradient; build its embedding with sparse=True")
        grad = grad.coalesce()
        rows = grad.indices()[0]
        state = self.state[p]
        if not state:
            state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        taken = [t.index_select(0, rows) for t in (p, state["exp_avg"], state["exp_avg_sq"])]
        adamw(taken[:1], [grad.values()], taken[1:2], taken[2:], [], [state["step"]], fused=group["fused"],
              amsgrad=False, beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
              weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)  # counts the step too
        for full, part in zip((p, state["exp_avg"], state["exp_avg_sq"]), taken):
            full.index_copy_(0, rows, part)


def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`nn.utils.clip_grad_norm_` (2-norm), also over sparse gradients; all-dense calls go to torch unchanged."""
    params = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in params):
        return nn.utils.clip_grad_norm_(params, max_norm)
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()  # repeated rows summed, so the norm is the gradient's own
    grads = [p.grad.values() if p.grad.is_sparse else p.grad for p in params]  # values() shares the storage
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, coef)
    return total
