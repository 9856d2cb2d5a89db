"""The one training and evaluation loop, used by every method.

AdamW with linear warmup then a linear, constant or cosine rate (`lr_schedule`), gradient clipping, dynamic padding with length-bucketed batches,
autocast in the run's precision (fp16 with a gradient scaler), evaluation each epoch. Methods plug in through `Hook`s:
  - `loss`        adds terms (distillation) to the task loss;
  - `before_step` edits gradients after clipping, before the optimizer (Child-Tuning masks);
  - `after_step`  edits weights after the optimizer (sparsity masks stay zero);
  - `on_epoch_end`, `on_train_begin`, `on_train_end` observe or schedule.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from analysis.core.config import TrainConfig
from analysis.core.precision import autocast, grad_scaler, prepare_device, resolve
from analysis.data.tokens import Encoded, accepts_token_types, batch_order, iterate
from analysis.training import metrics as task_metrics
from analysis.training.sparse_optim import LazyAdamW, clip_grad_norm_, sparse_parameters

if TYPE_CHECKING:
    from analysis.training.checkpoint import Checkpointer

ProgressFn = Callable[[int, int, str], None]
LogFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TaskSpec:
    """What the loop needs to know about the task."""

    num_labels: int  # 1 means regression
    metrics: tuple[str, ...]
    pad_id: int

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    total_steps: int
    step: int = 0
    epoch: int = 0
    batch_indices: np.ndarray | None = None  # training-set indices of the current batch


class Hook:
    """Base class: every method is a no-op until a subclass overrides it."""

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Extra optimizer parameter groups (e.g. learned mask scores), asked before the optimizer is built."""
        return []

    def on_train_begin(self, state: TrainState) -> None: ...

    def loss(self, state: TrainState, batch: dict[str, torch.Tensor], labels: torch.Tensor, outputs: Any,
             task: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """The new running total, given the plain task loss and the total so far."""
        return total

    def before_step(self, state: TrainState) -> None: ...

    def after_step(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps to continue this hook exactly (nested dicts/lists of numbers, strings, tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output; called after `on_train_begin` when a run resumes."""


@dataclass
class FitResult:
    metrics: dict[str, float]
    epoch_metrics: list[dict[str, float]]
    predictions: np.ndarray  # final eval outputs, in evaluation-set order
    train_seconds: float
    examples_seen: int
    steps: int
    tokens_seen: int = 0
    chosen_epoch: int = 0  # the epoch whose weights were kept (the last, unless a held-out part chose)

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.train_seconds if self.train_seconds > 0 else 0.0


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def task_loss(outputs: Any, labels: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    logits = outputs.logits.float()
    if task.is_regression:
        return nn.functional.mse_loss(logits.squeeze(-1), labels.float())
    return nn.functional.cross_entropy(logits, labels)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; biases and LayerNorm weights get no weight decay (the usual BERT recipe). Embedding tables with
    sparse gradients (the LSTM's) get the lazy row-wise update of `sparse_optim.LazyAdamW`."""
    lazy = {id(p) for p in sparse_parameters(model)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in lazy:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if lazy:
        return LazyAdamW(groups, sparse_parameters(model), cfg.lr, cfg.weight_decay, fused=cfg.fused_optimizer)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=cfg.fused_optimizer)


def _warmup_factor(step: int, warmup: int) -> float | None:
    """The warm-up ramp's factor at `step`, or None once warm-up is over."""
    return (step + 1) / max(1, warmup) if step < warmup else None


def _linear_decay(step: int, warmup: int, total: int) -> float:
    return max(0.0, (total - step) / max(1, total - warmup))


def _constant(step: int, warmup: int, total: int) -> float:
    return 1.0


def _cosine_decay(step: int, warmup: int, total: int) -> float:
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# lr_schedule name -> the factor after warm-up, as a function of (step, warmup steps, total steps)
LR_SCHEDULES: dict[str, Callable[[int, int, int], float]] = {
    "linear": _linear_decay, "constant": _constant, "cosine": _cosine_decay,
}


def lr_schedule(optimizer: torch.optim.Optimizer, name: str, warmup: int,
                total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps, then the named schedule: `linear` decays to 0 at `total`, `constant`
    holds the rate (with no warm-up: BertAdam's schedule 'none'), `cosine` follows half a cosine to 0."""
    after_warmup = LR_SCHEDULES[name]

    def factor(step: int) -> float:
        ramp = _warmup_factor(step, warmup)
        return ramp if ramp is not None else after_warmup(step, warmup, total)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def predict(model: nn.Module, enc: Encoded, task: TaskSpec, batch_size: int, precision: str,
            device: torch.device) -> np.ndarray:
    """Model outputs (logits, or values for regression) for every example, in the encoded order."""
    was_training = model.training
    model.eval()
    with_types = accepts_token_types(model)
    out = np.zeros((len(enc), task.num_labels), dtype=np.float32)
    for idx, batch in iterate(enc, batch_size, task.pad_id, with_types, shuffle=False, bucket=True):
        with autocast(device, precision):
            logits = model(**to_device(batch, device)).logits
        out[idx] = logits.float().cpu().numpy()
    model.train(was_training)
    return out


def evaluate(model: nn.Module, enc: Encoded, task: TaskSpec, batch_size: int, precision: str,
             device: torch.device) -> tuple[dict[str, float], np.ndarray]:
    outputs = predict(model, enc, task, batch_size, precision, device)
    assert enc.labels is not None
    return task_metrics.compute(task.metrics, outputs, enc.labels), outputs


def held_out_loss(outputs: np.ndarray, labels: np.ndarray, task: TaskSpec) -> float:
    """The training loss (cross-entropy, or squared error for regression) of stored outputs."""
    logits = torch.from_numpy(outputs)
    target = torch.from_numpy(labels)
    return float(task_loss(SimpleNamespace(logits=logits), target if task.is_regression else target.long(), task))


class BestEpoch:
    """Keeps the weights of the epoch with the best held-out score and says when patience has run out. A score
    is a list compared lexicographically, higher is better: [metric], [-loss] or [metric, -loss]."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_epoch, self.bad_epochs = patience, [], 0, 0
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, score: list[float], epoch: int, model: nn.Module) -> None:
        if score > self.best:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience


def held_out_score(held: dict[str, float], task: TaskSpec, select_on: str) -> list[float]:
    """The held-out score `select_on` names: the task's first metric, minus the loss, or the metric with ties
    broken by the loss (a small part's accuracy moves in coarse steps and ties often)."""
    metric, loss = held[task.metrics[0]], -held["loss"]
    return {"metric": [metric], "loss": [loss], "metric-then-loss": [metric, loss]}[select_on]


def fit(model: nn.Module, train: Encoded, evaluation: Encoded, task: TaskSpec, cfg: TrainConfig, seed: int,
        device: torch.device, hooks: Sequence[Hook] = (), progress: ProgressFn | None = None,
        log: LogFn | None = None, log_every: int = 10, holdout: Encoded | None = None,
        checkpoint: "Checkpointer | None" = None) -> FitResult:
    """Train `model` on `train`, evaluating on `evaluation` each epoch. With `holdout`, the epoch with the
    best held-out metric is kept (and training stops early after `cfg.patience` epochs without gain).
    With `checkpoint`, the loop's state is saved at epoch boundaries (and every N steps), and a resumed run
    continues from the saved state."""
    assert train.labels is not None
    cfg = cfg.replace(precision=resolve(cfg.precision, device))  # 'auto' only when called outside `execute`
    prepare_device(device)
    model.to(device).train()
    with_types = accepts_token_types(model)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = make_optimizer(model, cfg)
    for hook in hooks:
        for group in hook.param_groups(model):
            optimizer.add_param_group(group)
    scheduler = lr_schedule(optimizer, cfg.lr_schedule, int(cfg.warmup_ratio * total), total)
    scaler = grad_scaler(device, cfg.precision)
    state = TrainState(model, optimizer, cfg, total)
    labels_all = torch.from_numpy(train.labels)
    best = BestEpoch(cfg.patience) if holdout is not None else None
    for hook in hooks:
        hook.on_train_begin(state)
    epoch_metrics: list[dict[str, float]] = []
    seen, tokens, train_seconds, metrics, outputs = 0, 0, 0.0, {}, np.zeros(0)
    position = 0  # batches of the current epoch done (> 0 only when resuming mid-epoch)
    if checkpoint is not None:
        from analysis.training.checkpoint import Progress

        checkpoint.attach(state, scheduler, hooks, best, lambda epoch: batch_order(
            train.lengths, cfg.batch_size, seed * 1000 + epoch, True, cfg.length_bucketing))
        resumed = checkpoint.restore()
        if resumed is not None:
            epoch_metrics, seen, tokens = resumed.epoch_metrics, resumed.seen, resumed.tokens
            train_seconds, position = resumed.train_seconds, resumed.position
    while state.step < total:
        start = time.perf_counter()
        batches = iterate(train, cfg.batch_size, task.pad_id, with_types, seed=seed * 1000 + state.epoch,
                          shuffle=True, bucket=cfg.length_bucketing)
        for idx, batch in itertools.islice(batches, position, None):
            tokens += int(batch["attention_mask"].sum())
            batch = to_device(batch, device)
            labels = labels_all[idx].to(device)
            state.batch_indices = idx
            with autocast(device, cfg.precision):
                outputs = model(**batch)
                plain = task_loss(outputs, labels, task)
                loss = plain
                for hook in hooks:
                    loss = hook.loss(state, batch, labels, outputs, plain, loss)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # hooks and clipping see true gradients (a no-op unless fp16 on CUDA)
            if cfg.max_grad_norm > 0:
                clip_grad_norm_(model.parameters(), cfg.max_grad_norm)  # torch's, unless a gradient is sparse
            for hook in hooks:
                hook.before_step(state)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            for hook in hooks:
                hook.after_step(state)
            state.step += 1
            position += 1
            seen += len(idx)
            if log and (state.step % log_every == 0 or state.step == total):
                log({"step": state.step, "epoch": state.epoch, "loss": float(loss.detach()),
                     "lr": scheduler.get_last_lr()[0]})
            if checkpoint is not None and checkpoint.due(state.step):
                elapsed = train_seconds + time.perf_counter() - start
                checkpoint.save(Progress(position, seen, tokens, elapsed, epoch_metrics))
            if progress:
                progress(state.step, total, f"epoch {state.epoch + 1}, loss {float(loss.detach()):.4f}")
            if state.step >= total:
                break
        train_seconds += time.perf_counter() - start
        state.epoch, position = state.epoch + 1, 0
        record: dict[str, float] = {"epoch": state.epoch, "step": state.step}
        if best is not None:
            held, held_outputs = evaluate(model, holdout, task, cfg.eval_batch_size, cfg.precision, device)
            assert holdout.labels is not None
            held["loss"] = held_out_loss(held_outputs, holdout.labels, task)
            best.update(held_out_score(held, task, cfg.select_on), state.epoch, model)
            record.update({f"holdout_{k}": v for k, v in held.items()})
        last = state.step >= total or (best is not None and best.stop)
        if cfg.eval_every_epoch or last:
            metrics, outputs = evaluate(model, evaluation, task, cfg.eval_batch_size, cfg.precision, device)
            record.update(metrics)
            for hook in hooks:
                hook.on_epoch_end(state, metrics)
        epoch_metrics.append(record)
        if log:
            log({("" if k in ("epoch", "step") else "eval_") + k: v for k, v in record.items()})
        if last:
            break
        if checkpoint is not None and checkpoint.epoch_due():
            checkpoint.save(Progress(0, seen, tokens, train_seconds, epoch_metrics))
    if best is not None and best.state is not None and best.best_epoch != state.epoch:
        model.load_state_dict(best.state)
        metrics, outputs = evaluate(model, evaluation, task, cfg.eval_batch_size, cfg.precision, device)
    for hook in hooks:
        hook.on_train_end(state)
    return FitResult(metrics, epoch_metrics, outputs, train_seconds, seen, state.step, tokens,
                     best.best_epoch if best is not None else state.epoch)
