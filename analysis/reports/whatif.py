"""What-if pruning: edit a stored model without retraining and see at once what it does on the task's dev set.

An `Edit` removes weights (unstructured, by magnitude or at random), attention heads, FFN neurons and whole layers.
It is applied to a copy of the cached model (never to the stored weights): heads and FFN neurons are zeroed where
they enter the residual stream (the attention-output columns of a head, the FFN-output columns of a neuron), which
is exactly their removal; layers are dropped. A `WhatIf` session keeps the model, its tokenised dev set and the
unedited outputs loaded, so an edit costs one forward pass: first on a fixed seeded sample (an estimate with its
bootstrap interval), then on the whole dev set; a repeated edit is served from the session's cache.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.core.config import DataConfig, check
from analysis.core.errors import ConfigError
from analysis.core.precision import resolve
from analysis.data.tasks import load_task, sample_indices
from analysis.data.tokens import Encoded, encode
from analysis.methods.probes.fidelity import softmax
from analysis.methods.pruning.masks import apply_masks_, magnitude_scores, masks_from_weights, random_scores
from analysis.models.arch import MODULE_TYPES, Arch
from analysis.models.compact import drop_layers_, remove_ffn_neurons_
from analysis.models.heads import remove_heads_
from analysis.reports.compare import bootstrap_interval, paired_bootstrap
from analysis.reports.latency import time_passes
from analysis.store.index import RunStore
from analysis.training.evaluate import load_run_model
from analysis.training.loop import TaskSpec, predict
from analysis.training.metrics import compute as compute_metrics

CRITERIA = ("magnitude", "random", "movement")  # movement: the learned scores a movement-pruning run stored
SCOPES = ("global", "per-tensor")
SAMPLE_SIZE = 200  # the first estimate's seeded sample of the dev set
BOOTSTRAP = 1000
MAX_FLIPPED = 50


@dataclass(frozen=True)
class Edit:
    """One what-if edit. Layer and head numbers are those of the stored model (0-based)."""

    sparsity: float = 0.0  # share of the chosen weight matrices' weights set to zero
    criterion: str = "magnitude"  # magnitude (smallest |w| first) | random (seeded) | movement (stored scores)
    scope: str = "global"  # global: one threshold over all chosen matrices | per-tensor: the share in each
    modules: tuple[str, ...] = MODULE_TYPES  # which matrices of each layer the sparsity applies to
    heads: tuple[tuple[int, int], ...] = ()  # (layer, head) removed
    ffn: tuple[tuple[int, float], ...] = ()  # (layer, share of its FFN neurons removed, smallest norm first)
    layers: tuple[int, ...] = ()  # whole layers dropped
    seed: int = 0  # the random criterion's draw

    def validate(self, arch: Arch) -> None:
        n_layers, n_heads = arch.num_layers, arch.num_heads
        check(0 <= self.sparsity < 1, "sparsity", f"must be in [0, 1), got {self.sparsity}", "e.g. --sparsity 0.5")
        check(self.criterion in CRITERIA, "criterion", f"got {self.criterion!r}", f"use one of {', '.join(CRITERIA)}")
        check(self.scope in SCOPES, "scope", f"got {self.scope!r}", f"use one of {', '.join(SCOPES)}")
        check(self.seed == 0 or self.criterion == "random", "seed", f"--seed {self.seed} draws only the random "
              f"criterion, not {self.criterion}", "drop --seed, or use --criterion random")
        bad = [m for m in self.modules if m not in MODULE_TYPES]
        check(not bad and len(self.modules) > 0, "modules", f"unknown {bad}" if bad else "none chosen",
              f"use some of {', '.join(MODULE_TYPES)}")
        for layer, head in self.heads:
            check(0 <= layer < n_layers and 0 <= head < n_heads, "heads", f"no head {layer}.{head}",
                  f"layers 0-{n_layers - 1}, heads 0-{n_heads - 1}")
        for layer, share in self.ffn:
            check(0 <= layer < n_layers and 0 <= share <= 1, "ffn", f"bad {layer}:{share}",
                  f"LAYER:SHARE with a layer 0-{n_layers - 1} and a share in [0, 1]")
        check(all(0 <= i < n_layers for i in self.layers), "layers", f"no such layer in {list(self.layers)}",
              f"layers 0-{n_layers - 1}")
        check(len(set(self.layers)) < n_layers, "layers", "every layer dropped", "keep at least one layer")

    @property
    def structured(self) -> bool:
        return bool(self.heads or self.ffn or self.layers)

    @property
    def is_identity(self) -> bool:
        return self.sparsity == 0 and not self.structured

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def describe(self) -> str:
        parts = []
        if self.sparsity:
            where = "" if set(self.modules) == set(MODULE_TYPES) else f" of {','.join(self.modules)}"
            parts.append(f"{self.sparsity:.0%} {self.criterion}{where} ({self.scope})")
        if self.heads:
            parts.append(f"{len(self.heads)} head(s)")
        if self.ffn:
            parts.append("FFN " + ", ".join(f"L{layer} {share:.0%}" for layer, share in self.ffn))
        if self.layers:
            parts.append("layer(s) " + ",".join(map(str, sorted(self.layers))) + " dropped")
        return "; ".join(parts) or "no edit"


def parse_heads(text: str | None) -> tuple[tuple[int, int], ...]:
    """'0.3,5.11' -> ((0, 3), (5, 11))."""
    out = []
    for item in (text or "").split(","):
        if item.strip():
            try:
                layer, head = item.strip().split(".")
                out.append((int(layer), int(head)))
            except ValueError:
                raise ConfigError(f"--heads: {item.strip()!r} is not LAYER.HEAD", fix="e.g. --heads 0.3,5.11") from None
    return tuple(sorted(set(out)))


def parse_ffn(text: str | None) -> tuple[tuple[int, float], ...]:
    """'0:0.5,3:0.25' -> ((0, 0.5), (3, 0.25))."""
    out = {}
    for item in (text or "").split(","):
        if item.strip():
            try:
                layer, share = item.strip().split(":")
                out[int(layer)] = float(share)
            except ValueError:
                raise ConfigError(f"--ffn: {item.strip()!r} is not LAYER:SHARE", fix="e.g. --ffn 0:0.5,3:0.25") from None
    return tuple(sorted(out.items()))


def parse_layers(text: str | None) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(x) for x in (text or "").split(",") if x.strip()}))
    except ValueError:
        raise ConfigError(f"--layers: {text!r} is not a list of layer numbers", fix="e.g. --layers 4,5") from None


# -- applying an edit ---------------------------------------------------------------------------------------------


def _chosen_weights(arch: Arch, edit: Edit) -> dict[str, nn.Parameter]:
    out = {}
    for prefix, linear in arch.linears().items():
        layer, kind = arch.locate(prefix + ".weight")
        if kind in edit.modules and layer not in edit.layers:
            out[prefix + ".weight"] = linear.weight
    return out


def _ffn_order(arch: Arch, layer: int) -> torch.Tensor:
    """FFN neurons of a layer, least important first: the norm of the neuron's output column (what it writes)."""
    return arch.linear(layer, "ffn_out").weight.detach().float().norm(dim=0).argsort(stable=True)


class MaskOrder:
    """The order in which an unstructured criterion removes weights, sorted once: masks at any sparsity are then a
    slice of it (the same masks `select` gives: a stable sort of the scores, exactly round(s * n) removed)."""

    def __init__(self, weights: dict[str, torch.Tensor], criterion: str, scope: str, seed: int,
                 stored: dict[str, torch.Tensor] | None = None):
        if criterion == "movement":
            assert stored is not None, "movement scores come from the run (WhatIf.movement_scores)"
            scores = {name: stored[name] for name in weights}
        else:
            scores = magnitude_scores(weights) if criterion == "magnitude" else random_scores(seed)(weights)
        self.shapes = {name: w.shape for name, w in weights.items()}
        self.scope = scope
        if scope == "global":
            flat = torch.cat([v.reshape(-1).float() for v in scores.values()])
            self.orders = {"*": torch.sort(flat, stable=True).indices}
        else:
            self.orders = {name: torch.sort(v.reshape(-1).float(), stable=True).indices for name, v in scores.items()}

    def masks(self, sparsity: float) -> dict[str, torch.Tensor]:
        if self.scope != "global":
            return {name: _keep(order, sparsity).view(self.shapes[name]) for name, order in self.orders.items()}
        keep, out, start = _keep(self.orders["*"], sparsity), {}, 0
        for name, shape in self.shapes.items():
            n = shape.numel()
            out[name] = keep[start:start + n].view(shape)
            start += n
        return out


def _keep(order: torch.Tensor, sparsity: float) -> torch.Tensor:
    mask = torch.ones(order.numel(), dtype=torch.bool)
    mask[order[:int(round(sparsity * order.numel()))]] = False
    return mask


@torch.no_grad()
def apply_edit_(model: nn.Module, edit: Edit, order: MaskOrder | None = None) -> dict[str, Any]:
    """Edit `model` in place (a copy: never the stored one). `order`: the criterion's cached order over the same
    weights (else sorted here). Returns what was removed, for the compact copy and the per-layer accounting:
    {'heads': {layer: [kept]}, 'ffn': {layer: kept indices}, 'layers': kept}."""
    arch = Arch(model)
    edit.validate(arch)
    if edit.sparsity > 0:
        weights = _chosen_weights(arch, edit)
        if order is None and edit.criterion == "movement":
            raise ConfigError("the movement criterion needs the run's stored scores", fix="evaluate it in a WhatIf session")
        order = order or MaskOrder(weights, edit.criterion, edit.scope, edit.seed)
        apply_masks_(weights, order.masks(edit.sparsity))
    kept_heads = {}
    for layer in sorted({layer for layer, _ in edit.heads}):
        gone = {h for l_, h in edit.heads if l_ == layer}
        out = arch.linear(layer, "attn_out").weight
        for head in gone:
            out[:, head * arch.head_dim:(head + 1) * arch.head_dim] = 0
        kept_heads[layer] = [h for h in range(arch.num_heads) if h not in gone]
    kept_ffn = {}
    for layer, share in edit.ffn:
        order = _ffn_order(arch, layer)
        gone = order[:round(share * len(order))]
        arch.linear(layer, "ffn_out").weight[:, gone] = 0
        arch.linear(layer, "ffn_in").weight[gone, :] = 0
        kept_ffn[layer] = order[len(gone):].sort().values
    return {"heads": kept_heads, "ffn": kept_ffn, "layers": [i for i in range(arch.num_layers) if i not in edit.layers]}


def layer_sparsity(model: nn.Module, dropped: tuple[int, ...]) -> list[float]:
    """Share of zero weights in each layer's six matrices (1.0 for a dropped layer), before layers are dropped."""
    arch = Arch(model)
    out = []
    for i in range(arch.num_layers):
        if i in dropped:
            out.append(1.0)
            continue
        weights = [arch.linear(i, kind).weight for kind in MODULE_TYPES]
        zeros = sum(int((w == 0).sum()) for w in weights)
        out.append(zeros / sum(w.numel() for w in weights))
    return out


def compacted(model: nn.Module, removed: dict[str, Any]) -> nn.Module:
    """A copy with the edited heads, neurons and layers really removed (what latency is measured on)."""
    small = copy.deepcopy(model)
    if removed["heads"]:
        remove_heads_(small, removed["heads"])
    if removed["ffn"]:
        remove_ffn_neurons_(small, removed["ffn"])
    if len(removed["layers"]) < Arch(small).num_layers:
        drop_layers_(small, removed["layers"])
    return small


# -- a session ----------------------------------------------------------------------------------------------------


@dataclass
class Outputs:
    outputs: np.ndarray  # (n, classes) logits, or (n, 1) values
    labels: np.ndarray
    regression: bool

    @property
    def predicted(self) -> np.ndarray:
        return self.outputs[:, 0] if self.regression else self.outputs.argmax(-1)


@dataclass
class WhatIf:
    """A stored model, its dev set and its unedited outputs, loaded once; edits are evaluated against them."""

    store: RunStore
    run_id: str
    precision: str = "auto"
    sample_size: int = SAMPLE_SIZE
    seed: int = 0
    batch_size: int = 128  # evaluation batch (in bf16, another batching can flip a near-tie example)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        started = time.perf_counter()
        self.model, self.tokenizer, config = load_run_model(self.store, self.run_id, encoder_only=True)
        self.model.to(self.device).eval()
        self.precision = resolve(self.precision, self.device)
        data_cfg = DataConfig.from_dict(config.get("data", {}), where=f"data config of run {self.run_id}")
        self.data = load_task(data_cfg, int(config.get("seed", 0)), need_train=False)
        self.task = TaskSpec(self.data.card.num_labels, self.data.card.metrics, self.tokenizer.pad_token_id or 0)
        self.metric = self.task.metrics[0]
        self.dev = encode(self.data.eval, self.tokenizer, data_cfg.max_length)
        self.sample = np.sort(sample_indices(len(self.dev), min(self.sample_size, len(self.dev)), self.seed))
        self.dev_sample = self.dev.take(self.sample)
        self.texts = [" / ".join(t[i] for t in self.data.eval.texts) for i in range(len(self.dev))]
        self.base = self._outputs(self.model, self.dev)
        self.base_value = self._value(self.base)
        self.arch = Arch(self.model)
        self.rest = np.setdiff1d(np.arange(len(self.dev)), self.sample)
        self.dev_rest = self.dev.take(self.rest)
        self._cache: dict[tuple[str, bool], dict[str, Any]] = {}
        self._orders: dict[tuple[Any, ...], MaskOrder] = {}
        self._edited: tuple[str, Any] | None = None  # (edit key, (model, removed, per-layer sparsity, sample outputs))
        self._lock = threading.Lock()  # one edit at a time: the dashboard's sessions share a loaded model
        self.mask_order(Edit(sparsity=0.5))  # the explorer's first question: global magnitude, sorted while loading
        self.load_seconds = time.perf_counter() - started

    def mask_order(self, edit: Edit) -> MaskOrder:
        key = (edit.criterion, edit.scope, edit.seed if edit.criterion == "random" else None, edit.modules, edit.layers)
        if key not in self._orders:
            stored = self.movement_scores() if edit.criterion == "movement" else None
            self._orders[key] = MaskOrder(_chosen_weights(self.arch, edit), edit.criterion, edit.scope, edit.seed,
                                          stored)
        return self._orders[key]

    @property
    def has_movement_scores(self) -> bool:
        return "movement_scores.safetensors" in self.store.artefacts(self.run_id)

    def movement_scores(self) -> dict[str, torch.Tensor]:
        """The scores a movement-pruning run learned (its masks are their top-k), to re-threshold at any sparsity."""
        if not self.has_movement_scores:
            raise ConfigError(f"run {self.run_id} stored no movement scores",
                              fix="the movement criterion needs a movement-pruning run (python -m analysis prune "
                                  "--method movement); use magnitude or random here")
        return {k: torch.from_numpy(v).float() for k, v in self.store.load_arrays(self.run_id, "movement_scores").items()}

    # -- evaluation --------------------------------------------------------------------------------------------

    def _outputs(self, model: nn.Module, enc: Encoded) -> Outputs:
        out = predict(model, enc, self.task, self.batch_size, self.precision, self.device)
        return Outputs(out, np.asarray(enc.labels), self.task.is_regression)

    def _value(self, out: Outputs) -> float:
        return float(compute_metrics((self.metric,), out.outputs, out.labels)[self.metric])

    def edited_model(self, edit: Edit) -> tuple[nn.Module, dict[str, Any], list[float]]:
        edit.validate(self.arch)  # before the copy: a bad edit costs nothing (apply_edit_ checks again, for its callers)
        model = copy.deepcopy(self.model)
        removed = apply_edit_(model, edit, self.mask_order(edit) if edit.sparsity > 0 else None)
        per_layer = layer_sparsity(model, edit.layers)
        if edit.layers:
            drop_layers_(model, removed["layers"])
        return model, removed, per_layer

    def evaluate(self, edit: Edit, full: bool = True, latency: bool = False) -> dict[str, Any]:
        """The edit's metric on the sample (full=False) or the whole dev set, its change against the unedited model
        with a paired bootstrap interval, agreement, KL, per-layer sparsity and the flipped examples."""
        with self._lock:
            return self._evaluate(edit, full, latency)

    def _evaluate(self, edit: Edit, full: bool, latency: bool) -> dict[str, Any]:
        key = (edit.key(), full)
        if key in self._cache and (not latency or "latency" in self._cache[key]):
            return {**self._cache[key], "cached": True, "seconds": 0.0}
        started = time.perf_counter()
        if self._edited is None or self._edited[0] != edit.key():  # the estimate's model serves the full pass
            model, removed, per_layer = self.edited_model(edit)
            self._edited = (edit.key(), (model, removed, per_layer, self._outputs(model, self.dev_sample)))
        model, removed, per_layer, on_sample = self._edited[1]
        idx = np.arange(len(self.dev)) if full else self.sample
        base = Outputs(self.base.outputs[idx], self.base.labels[idx], self.base.regression)
        edited = on_sample
        if full:  # the sample is done: the rest of the dev set, then both in dev order
            outputs = np.empty_like(self.base.outputs)
            outputs[self.sample] = on_sample.outputs
            if len(self.rest):
                outputs[self.rest] = self._outputs(model, self.dev_rest).outputs
            edited = Outputs(outputs, self.base.labels, self.base.regression)
        result = self._compare(edit, base, edited, idx, full)
        result["layer_sparsity"] = per_layer
        result["encoder_sparsity"] = float(np.mean(per_layer))  # every layer has the same six matrices
        if latency:
            result["latency"] = self._latency(removed, edit)
        result["seconds"] = time.perf_counter() - started
        self._cache[key] = result
        return {**result, "cached": False}

    def _compare(self, edit: Edit, base: Outputs, edited: Outputs, idx: np.ndarray, full: bool) -> dict[str, Any]:
        value = self._value(edited)
        low, high = bootstrap_interval(edited.predicted, edited.labels, self.metric, BOOTSTRAP, self.seed)
        change = paired_bootstrap(edited.predicted, base.predicted, edited.labels, self.metric, BOOTSTRAP, self.seed)
        out: dict[str, Any] = {
            "run_id": self.run_id, "edit": edit.to_dict(), "edit_text": edit.describe(), "metric": self.metric,
            "full": full, "examples": len(idx), "dev_examples": len(self.dev), "precision": self.precision,
            "value": value, "ci_low": low, "ci_high": high, "unedited": self._value(base),
            "unedited_full": self.base_value, "change": value - self._value(base),
            "change_ci_low": change["ci_low"], "change_ci_high": change["ci_high"],
            "agreement": None, "kl": None, "flipped": []}
        if not self.task.is_regression:
            p, q = softmax(base.outputs), softmax(edited.outputs)
            out["agreement"] = float((base.predicted == edited.predicted).mean())
            out["kl"] = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))
            flips = np.flatnonzero(base.predicted != edited.predicted)[:MAX_FLIPPED]
            out["flipped"] = [{"index": int(idx[i]), "text": self.texts[int(idx[i])], "gold": int(base.labels[i]),
                               "unedited": int(base.predicted[i]), "edited": int(edited.predicted[i])} for i in flips]
        else:
            out["mean_abs_change"] = float(np.mean(np.abs(edited.predicted - base.predicted)))
        return out

    def _latency(self, removed: dict[str, Any], edit: Edit, batches: int = 4, batch_size: int = 32) -> dict[str, Any]:
        """ms per batch of the unedited model and of the compacted edit (structured removal only: zeroed weights
        cost the same as dense ones)."""
        from analysis.data.tokens import accepts_token_types, iterate

        with_types = accepts_token_types(self.model)
        picked = [b for _, b in iterate(self.dev, batch_size, self.task.pad_id, with_types, shuffle=False,
                                        bucket=False)][:batches]
        dense = time_passes(self.model, picked, 2, self.precision) / len(picked)
        small = compacted(self.model, removed) if edit.structured else self.model
        edited = time_passes(small, picked, 2, self.precision) / len(picked) if edit.structured else dense
        return {"unedited_ms": 1000 * dense, "edited_ms": 1000 * edited, "speedup": dense / edited if edited else None,
                "batch_size": batch_size, "batches": len(picked), "structured_only": True}

    def masks(self, edit: Edit) -> dict[str, torch.Tensor]:
        """The edit as weight masks over the model's prunable matrices (for a retraining run); layer drops cannot be
        expressed as masks."""
        if edit.layers:
            raise ConfigError("dropped layers cannot be retrained from masks",
                              fix="retrain a layer-dropping edit with `python -m analysis prune --method layers`")
        model, _, _ = self.edited_model(edit)
        arch = Arch(model)
        return masks_from_weights({p + ".weight": lin.weight for p, lin in arch.linears().items()})
