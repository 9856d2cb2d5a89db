"""Unstructured masks: selection by score (per tensor or global), the cubic schedule, and the hook that
keeps pruned weights at zero through training."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from analysis.core.errors import ConfigError
from analysis.training.loop import Hook, TrainState

Masks = dict[str, torch.Tensor]  # parameter name -> bool mask (True = kept)


def keep_top(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask keeping the highest-scoring (1 - sparsity) entries: exactly round(sparsity * n) pruned."""
    n = scores.numel()
    pruned = int(round(sparsity * n))
    mask = torch.ones(n, dtype=torch.bool, device=scores.device)
    if pruned > 0:
        # a stable sort on the flattened scores breaks ties by position, so the count is exact
        order = torch.sort(scores.reshape(-1).float(), stable=True).indices
        mask[order[:pruned]] = False
    return mask.view_as(scores)


def select(scores: dict[str, torch.Tensor], sparsity: float, scope: str) -> Masks:
    """Masks at `sparsity`: 'per-tensor' (layer-wise uniform) or 'global' (one threshold over all)."""
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}", fix="use e.g. --sparsity 0.9")
    if scope == "per-tensor":
        return {name: keep_top(s, sparsity) for name, s in scores.items()}
    if scope == "global":
        flat = torch.cat([s.reshape(-1).float() for s in scores.values()])
        keep = keep_top(flat, sparsity)
        out, start = {}, 0
        for name, s in scores.items():
            out[name] = keep[start:start + s.numel()].view_as(s)
            start += s.numel()
        return out
    raise ConfigError(f"unknown pruning scope {scope!r}", fix="use 'per-tensor' or 'global'")


def cubic_sparsity(step: int, total: int, final: float, initial: float = 0.0, start: float = 0.0,
                   end: float = 1.0) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - t/T)^3 between the start and end fractions of training."""
    first, last = start * total, end * total
    if step <= first:
        return initial
    if step >= last or last <= first:
        return final
    progress = (step - first) / (last - first)
    return final + (initial - final) * (1.0 - progress) ** 3


@torch.no_grad()
def apply_masks_(params: dict[str, nn.Parameter], masks: Masks) -> None:
    for name, mask in masks.items():
        params[name].mul_(mask)


ScoreFn = Callable[[dict[str, nn.Parameter]], dict[str, torch.Tensor]]


class ScheduledMaskHook(Hook):
    """Recompute masks from `score_fn` on a schedule; re-zero pruned weights after every optimizer step.

    Scores are computed on w * mask, so a pruned weight (now zero) stays pruned as sparsity grows.
    """

    def __init__(self, params: dict[str, nn.Parameter], score_fn: ScoreFn, final: float, scope: str,
                 schedule: str, interval: int, start: float, end: float, fixed: Masks | None = None):
        self.params, self.score_fn, self.final, self.scope = params, score_fn, final, scope
        self.schedule, self.interval, self.start, self.end = schedule, max(1, interval), start, end
        self.fixed = fixed  # given masks (e.g. a lottery ticket from another run): applied once, never recomputed
        if fixed is not None:
            self.schedule = "one-shot"
        self.masks: Masks = {}
        self.history: list[tuple[int, float]] = []

    def target(self, step: int, total: int) -> float:
        if self.schedule == "one-shot":
            return self.final
        return cubic_sparsity(step, total, self.final, 0.0, self.start, self.end)

    def update(self, step: int, total: int) -> None:
        sparsity = self.target(step, total)
        if self.history and sparsity == self.history[-1][1]:
            return
        if self.fixed is not None:
            self.masks = {name: m.to(self.params[name].device) for name, m in self.fixed.items()}
            sparsity = 1.0 - sum(float(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values())
        else:
            self.masks = select(self.score_fn(self.params), sparsity, self.scope)
        self.history.append((step, sparsity))
        apply_masks_(self.params, self.masks)

    def on_train_begin(self, state: TrainState) -> None:
        self.update(0, state.total_steps)

    def after_step(self, state: TrainState) -> None:
        done = state.step + 1  # hooks run before the loop counts this step
        if self.schedule != "one-shot" and (done % self.interval == 0 or done == state.total_steps):
            self.update(done, state.total_steps)
        apply_masks_(self.params, self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {name: m.to(self.params[name].device) for name, m in state["masks"].items()}
        self.history = [(int(step), float(sparsity)) for step, sparsity in state["history"]]

    def on_train_end(self, state: TrainState) -> None:
        # the last mask update must reach the final sparsity even if the ramp ended between intervals
        if self.schedule != "one-shot" and self.history[-1][1] != self.final:
            self.update(state.total_steps, state.total_steps)


def magnitude_scores(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {name: p.detach().abs() for name, p in params.items()}


def random_scores(seed: int) -> ScoreFn:
    """Fixed random scores per weight (drawn once), masked like magnitudes so masks nest as sparsity grows."""
    cache: dict[str, torch.Tensor] = {}

    def scores(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        if not cache:
            gen = torch.Generator().manual_seed(seed)
            for name, p in params.items():
                cache[name] = torch.rand(p.shape, generator=gen).to(p.device) + 1e-6
        return {name: cache[name] * (p.detach() != 0) for name, p in params.items()}

    return scores


def masks_from_weights(params: dict[str, nn.Parameter]) -> Masks:
    return {name: p.detach() != 0 for name, p in params.items()}


def load_masks(source: str, store=None) -> Masks:
    """Masks from a .safetensors file (tensor name -> 0/1) or from a stored pruning run's `masks` artefact."""
    from pathlib import Path

    path = Path(source)
    if source.endswith(".safetensors") or path.is_file():
        return {name: as_mask(t, name, source) for name, t in _read_mask_file(path, source).items()}
    from analysis.store.index import RunStore

    store = store or RunStore()
    record = store.require(source)
    if "masks.safetensors" not in store.artefacts(source):
        raise ConfigError(f"run {source} ({record.kind} {record.row.get('method')}) stored no unstructured masks",
                          fix="give a run of sparsebert, magnitude, gradual-magnitude, movement or random")
    path = store.run_dir(source) / "artefacts" / "masks.safetensors"
    return {name: as_mask(t, name, f"run {source}") for name, t in _read_mask_file(path, f"run {source}").items()}


def _read_mask_file(path, source: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors mask file, with a clear error for a missing, oversized or unreadable one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from analysis.core.settings import max_file_bytes

    if not path.is_file():
        raise ConfigError(f"mask file {source} does not exist", fix="give the path of a .safetensors mask file")
    if path.stat().st_size > max_file_bytes():
        raise ConfigError(f"mask file {source} is {path.stat().st_size / 1e6:.0f} MB, over the "
                          f"{max_file_bytes() / 1e6:.0f} MB limit", fix="check the file, or raise PRUNESCOPE_MAX_FILE_MB")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise ConfigError(f"mask file {source} is not a readable safetensors file ({exc})",
                          fix="save masks with safetensors.torch.save_file({name: mask})") from None


def as_mask(tensor: torch.Tensor, name: str, source: str) -> torch.Tensor:
    """A bool or 0/1 tensor as a bool mask. Other values (NaN, 2, -1, 0.37) mean this is not a mask, e.g. weights."""
    if tensor.dtype == torch.bool:
        return tensor
    try:
        values = tensor.to(torch.float64)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"mask {name!r} in {source} has dtype {tensor.dtype}, which cannot be read as 0/1 ({exc})",
                          fix="store masks as bool or uint8 tensors") from None
    bad = (values != 0) & (values != 1)
    if bool(bad.any()):
        raise ConfigError(f"mask {name!r} in {source} holds values other than 0 and 1 (e.g. {values[bad][0].item()!r})"
                          ": is it a weights file?", fix="a mask file holds one 0/1 (or bool) tensor per weight")
    return values != 0


def check_masks_fit(params: dict[str, nn.Parameter], masks: Masks, source: str = "the masks") -> None:
    """A mask file must name this model's tensors with their exact shapes."""
    missing = sorted(set(params) - set(masks))
    extra = sorted(set(masks) - set(params))
    if extra or missing:
        raise ConfigError(f"{source} do not fit this model ({len(extra)} unknown tensor(s): {extra[:3]}, "
                          f"{len(missing)} missing: {missing[:3]})",
                          fix="use masks saved from a model of the same architecture")
    for name, mask in masks.items():
        if tuple(mask.shape) != tuple(params[name].shape):
            raise ConfigError(f"mask {name} in {source} has shape {tuple(mask.shape)}, the weight "
                              f"{tuple(params[name].shape)}", fix="use masks saved from a model of the same architecture")
