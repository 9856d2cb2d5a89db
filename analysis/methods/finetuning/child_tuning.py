"""Child-Tuning (Xu et al., EMNLP 2021): update only a child network, by masking gradients.

The mask is applied to the raw gradient after clipping and before the optimizer's moment updates, as
in the official ChildTuningAdamW. F: a fresh Bernoulli(p) mask every step, kept entries scaled by 1/p,
on every parameter by default. D: a fixed mask keeping the top-p fraction of encoder-layer parameters by
diagonal empirical Fisher (global threshold); embeddings, pooler and classifier train fully.
`strict` truly freezes non-child entries (their weights and Adam moments are restored after each step),
instead of the official code's side effects (momentum still moves them; weight decay still shrinks them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from analysis.core.config import ConfigBase, FinetuneConfig, check
from analysis.core.errors import ConfigError
from analysis.core.precision import autocast
from analysis.data.tokens import accepts_token_types, iterate
from analysis.methods.finetuning.base import FINETUNE_METHODS, FinetuneMethod, RunInputs
from analysis.methods.pruning.masks import check_masks_fit, select
from analysis.models.arch import MODULE_TYPES, Arch
from analysis.store.index import RunStore
from analysis.training.loop import Hook, TrainState, task_loss, to_device

if TYPE_CHECKING:
    from analysis.runs.experiment import RunContext


def check_p(p: float) -> None:
    check(0 < p <= 1, "p", f"the child fraction must be in (0, 1], got {p}", "use e.g. --p 0.3 (1 = vanilla)")


@dataclass(frozen=True)
class ChildFOptions(ConfigBase):
    p: float = 0.3
    scope: str = "all"  # all | encoder
    strict: bool = False

    def validate(self) -> None:
        check_p(self.p)
        check(self.scope in ("all", "encoder"), "scope", f"got {self.scope!r}", "use 'all' or 'encoder'")


@dataclass(frozen=True)
class ChildDOptions(ConfigBase):
    p: float = 0.3
    strict: bool = False
    selection: str = "fisher"  # fisher | lowest-fisher | random (the paper's ablations)
    fisher_examples: int | None = None  # None: one pass over the whole training set (the official code)
    fisher_batch_size: int = 16
    fisher_loss: str = "auto"  # auto: cross-entropy for classification, squared error for regression
    mask_from: str | None = None  # reuse the D mask of another run

    def validate(self) -> None:
        check_p(self.p)
        check(self.selection in ("fisher", "lowest-fisher", "random"), "selection", f"got {self.selection!r}",
              "use fisher, lowest-fisher or random")
        check(self.fisher_loss in ("auto", "ce", "mse"), "fisher_loss", f"got {self.fisher_loss!r}",
              "use auto, ce or mse")
        check(self.fisher_examples is None or self.fisher_examples >= 1, "fisher_examples",
              f"got {self.fisher_examples}", "omit it to use the whole training set")


class GradientMaskHook(Hook):
    """Multiplies gradients by a mask before the optimizer step; `strict` restores non-child entries after it."""

    def __init__(self, params: dict[str, nn.Parameter], strict: bool):
        self.params, self.strict = params, strict
        self.current: dict[str, torch.Tensor] = {}
        self._saved: dict[str, tuple[torch.Tensor, ...]] = {}

    def masks(self, state: TrainState) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def scale(self) -> float:
        return 1.0

    def before_step(self, state: TrainState) -> None:
        self.current = self.masks(state)
        grads = [self.params[n].grad for n in self.current]
        masks = [m.to(g.dtype) for m, g in zip(self.current.values(), grads)]
        torch._foreach_mul_(grads, masks)
        if self.scale() != 1.0:
            torch._foreach_mul_(grads, self.scale())
        if self.strict:
            self._saved = {n: self._snapshot(state, self.params[n]) for n in self.current}

    @staticmethod
    def _snapshot(state: TrainState, p: nn.Parameter) -> tuple[torch.Tensor, ...]:
        opt = state.optimizer.state.get(p, {})
        moments = tuple(opt[k].clone() for k in ("exp_avg", "exp_avg_sq") if k in opt)
        return (p.detach().clone(),) + moments

    @torch.no_grad()
    def after_step(self, state: TrainState) -> None:
        if not self.strict:
            return
        for name, mask in self.current.items():
            p = self.params[name]
            saved = self._saved[name]
            p.copy_(torch.where(mask, p, saved[0]))
            opt = state.optimizer.state.get(p, {})
            for key, old in zip(("exp_avg", "exp_avg_sq"), saved[1:]):
                if key in opt:
                    opt[key].copy_(torch.where(mask, opt[key], old))
        self._saved = {}


class ChildFHook(GradientMaskHook):
    def __init__(self, params: dict[str, nn.Parameter], p: float, strict: bool, seed: int):
        super().__init__(params, strict)
        self.p = p
        self.generator = torch.Generator(device="cpu").manual_seed(seed + 7919)  # never touches the global RNG
        self.kept = 0.0

    def masks(self, state: TrainState) -> dict[str, torch.Tensor]:
        out = {}
        for name, param in self.params.items():
            if param.grad is not None:
                draw = torch.rand(param.shape, generator=self.generator)
                out[name] = (draw < self.p).to(param.device) if self.p < 1 else torch.ones_like(param, dtype=torch.bool)
        return out

    def scale(self) -> float:
        return 1.0 / self.p

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "kept": self.kept}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.kept = state["kept"]


class ChildDHook(GradientMaskHook):
    def __init__(self, params: dict[str, nn.Parameter], fixed: dict[str, torch.Tensor], strict: bool):
        super().__init__(params, strict)
        self.fixed = fixed

    def masks(self, state: TrainState) -> dict[str, torch.Tensor]:
        return {n: m for n, m in self.fixed.items() if self.params[n].grad is not None}

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.fixed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fixed = {n: m.to(self.params[n].device) for n, m in state["masks"].items()}


def encoder_params(model: nn.Module) -> dict[str, nn.Parameter]:
    arch = Arch(model)
    return {n: p for n, p in model.named_parameters() if arch.is_encoder_param(n)}


def fisher_scores(model: nn.Module, inputs: RunInputs, options: ChildDOptions, seed: int,
                  device: torch.device, precision: str, progress: Callable[[int, int], None] | None = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Diagonal empirical Fisher with gold labels: mean over batches of per-tensor-clipped grad^2.

    One shuffled pass in train mode (dropout on), batch 16, as the official code; vectorised with
    torch._foreach ops; the global RNG is restored afterwards so training is unaffected. `progress(batches done,
    batches)` after each batch (the pass can take as long as an epoch of training).
    """
    task = inputs.task
    check_fisher_loss(options, task.is_regression)
    params = encoder_params(model)
    names, tensors = list(params), list(params.values())
    fisher = [torch.zeros_like(p) for p in tensors]
    enc = inputs.train
    assert enc is not None and enc.labels is not None
    labels = torch.from_numpy(enc.labels)
    count = min(len(enc), options.fisher_examples or len(enc))
    start, batches, examples = time.perf_counter(), 0, 0
    with torch.random.fork_rng(devices=[]):
        model.to(device).train()
        for idx, batch in iterate(enc, options.fisher_batch_size, task.pad_id, accepts_token_types(model), seed=seed,
                                  shuffle=True, bucket=False):
            if examples >= count:
                break
            with autocast(device, precision):
                loss = task_loss(model(**to_device(batch, device)), labels[idx].to(device), task)
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g.float() for g, p in zip(grads, tensors)]
            norms = torch._foreach_norm(grads)
            torch._foreach_mul_(grads, [torch.clamp(1.0 / (n + 1e-6), max=1.0) for n in norms])
            torch._foreach_addcmul_(fisher, grads, grads)
            batches += 1
            examples += len(idx)
            if progress:
                progress(batches, -(-count // options.fisher_batch_size))
    torch._foreach_div_(fisher, max(1, batches))
    cost = {"fisher_seconds": time.perf_counter() - start, "fisher_examples": examples, "fisher_batches": batches}
    return dict(zip(names, fisher)), cost


def check_fisher_loss(options: ChildDOptions, regression: bool) -> None:
    """The Fisher's log-likelihood must match the task: cross-entropy for classes, squared error for scores."""
    if options.fisher_loss == "ce" and regression:
        raise ConfigError("a cross-entropy Fisher needs class labels, but this task is a regression",
                          fix="use --fisher-loss auto (squared error for regression)")
    if options.fisher_loss == "mse" and not regression:
        raise ConfigError("a squared-error Fisher needs a regression task", fix="use --fisher-loss auto")


def child_mask(scores: dict[str, torch.Tensor], p: float, selection: str, seed: int) -> dict[str, torch.Tensor]:
    """Keep a fraction p of all encoder entries under one global threshold."""
    if selection == "random":
        gen = torch.Generator().manual_seed(seed + 104729)
        scores = {n: torch.rand(s.shape, generator=gen) for n, s in scores.items()}
    elif selection == "lowest-fisher":
        scores = {n: -s for n, s in scores.items()}
    return select(scores, 1.0 - p, "global") if p < 1 else {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}


def mask_summary(model: nn.Module, masks: dict[str, torch.Tensor], scores: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """Child share per layer and module type, and Fisher statistics per layer and module type."""
    arch = Arch(model)
    rows: dict[tuple[int, str], dict[str, float]] = {}
    for name, mask in masks.items():
        layer, kind = arch.locate(name)
        kind = kind if kind in MODULE_TYPES else "other"
        row = rows.setdefault((layer, kind), {"kept": 0.0, "total": 0.0, "fisher_sum": 0.0, "fisher_max": 0.0})
        row["kept"] += float(mask.sum())
        row["total"] += mask.numel()
        if scores is not None:
            row["fisher_sum"] += float(scores[name].sum())
            row["fisher_max"] = max(row["fisher_max"], float(scores[name].max()))
    table = [{"layer": layer, "module": kind, "child_share": r["kept"] / r["total"],
              "fisher_mean": r["fisher_sum"] / r["total"], "fisher_max": r["fisher_max"], "params": int(r["total"])}
             for (layer, kind), r in sorted(rows.items())]
    per_layer: dict[int, list[float]] = {}
    for r in table:
        per_layer.setdefault(r["layer"], [0.0, 0.0])
        per_layer[r["layer"]][0] += r["child_share"] * r["params"]
        per_layer[r["layer"]][1] += r["params"]
    return {"by_layer_module": table, "child_share_per_layer": {str(k): v[0] / v[1] for k, v in sorted(per_layer.items())}}


@FINETUNE_METHODS.register("child-f")
class ChildTuningF(FinetuneMethod):
    """Task-free Child-Tuning: a fresh Bernoulli(p) gradient mask every step, scaled by 1/p."""

    Options = ChildFOptions

    def hooks(self, model: nn.Module, inputs: RunInputs, options: ChildFOptions, config: FinetuneConfig,
              ctx: RunContext) -> list[Hook]:
        params = dict(model.named_parameters()) if options.scope == "all" else encoder_params(model)
        return [ChildFHook(params, options.p, options.strict, config.seed)]


@FINETUNE_METHODS.register("child-d")
class ChildTuningD(FinetuneMethod):
    """Task-driven Child-Tuning: a fixed mask of the top-p encoder parameters by Fisher information."""

    Options = ChildDOptions

    def check(self, options: ChildDOptions, inputs: RunInputs) -> None:
        check_fisher_loss(options, inputs.task.is_regression)
        if options.mask_from:
            read_child_mask(RunStore(), options.mask_from, encoder_params(inputs.model))

    def hooks(self, model: nn.Module, inputs: RunInputs, options: ChildDOptions, config: FinetuneConfig,
              ctx: RunContext) -> list[Hook]:
        params, seed = encoder_params(model), config.seed
        scores = None
        if options.mask_from:
            masks = read_child_mask(ctx.store, options.mask_from, params)
        else:
            device = torch.device(ctx.device)
            def said(done: int, total: int) -> None:
                ctx.progress(0, 1, f"Fisher information for the child network: batch {done}/{total}")

            scores, cost = fisher_scores(model, inputs, options, seed, device, config.train.precision, said)
            masks = child_mask(scores, options.p, options.selection, seed)
            ctx.save_json("fisher_cost", cost)
        masks = {n: m.to(params[n].device) for n, m in masks.items()}
        save_child_mask(ctx, masks)
        ctx.save_json("child_network", mask_summary(model, masks, scores))
        return [ChildDHook(params, masks, options.strict)]


def save_child_mask(ctx: RunContext, masks: dict[str, torch.Tensor]) -> None:
    """The D mask, bit-packed (1 bit per parameter), with its shapes."""
    ctx.save_arrays("child_mask", {n: np.packbits(m.cpu().numpy().reshape(-1)) for n, m in masks.items()})
    ctx.save_json("child_mask_shapes", {n: list(m.shape) for n, m in masks.items()})


def read_child_mask(store: RunStore, run_id: str, params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """A stored D mask, unpacked and checked against this model's encoder tensors."""
    packed = store.load_arrays(run_id, "child_mask")
    shapes = store.load_artifact_json(run_id, "child_mask_shapes")
    masks = {n: torch.from_numpy(np.unpackbits(packed[n])[: int(np.prod(s))].reshape(s).astype(bool))
             for n, s in shapes.items()}
    check_masks_fit(params, masks)
    return masks
