"""The `heads` experiment: Michel et al. importance and integrated gradients on the head gates of one model
(a stored run's weights, or the pre-trained 'default'), on a dev set, stored as a run of kind `heads`.

Both score arrays are stored on the model's original (layers x heads) grid: the heads a head-pruned run
removed are NaN there, so a heatmap can mark them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from analysis.core.config import PRECISIONS, ConfigBase, DataConfig, check
from analysis.core.errors import ConfigError
from analysis.core.precision import autocast
from analysis.data import tasks as data_mod
from analysis.data.tokens import Encoded, accepts_token_types, encode, iterate
from analysis.methods.interpret.attributions import Explained
from analysis.models import loading as models
from analysis.models.arch import Arch
from analysis.models.heads import gate_integrated_gradients, head_importance, kept_heads, on_original_heads
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult
from analysis.store.index import RunStore
from analysis.training.evaluate import load_run_model

IG_ROWS = 256  # rows (examples x steps) per integrated-gradients pass: bounds memory (512 rows peaked at 3.9 GB)
DEFAULT_DATASET = "sst2"  # what 'default' (a pre-trained model with no task) is scored on unless told
UNTRAINED_HEAD = ("the pre-trained default has no task head: its classifier is a seeded random initialisation, "
                  "so scores show the pre-trained encoder under a random read-out")


@dataclass(frozen=True)
class HeadsConfig(ConfigBase):
    """Head importance of one model on a dev set: Michel et al. and integrated gradients on the head gates."""

    target: str = "default"  # a run id (finetune/prune with weights), or 'default'
    dataset: str = ""  # '' = the run's own evaluation data (sst2 for 'default'); or a registered dataset name
    max_examples: int | None = None  # None: every example of the evaluation split
    ig_examples: int | None = 256  # IG costs ~ig_steps x Michel per example: a seeded subset of the examples
    ig_steps: int = 8  # Gauss-Legendre steps; 8 kept the mean |convergence delta| ~4e-4 of the attributed total
    batch_size: int = 128  # length-bucketed; larger batches were ~30% cheaper per example on 2 CPU cores
    # of the forward and backward passes. fp32 by default, not auto: integrated gradients' completeness check
    # needs it (bf16 gave a relative convergence delta of 0.34 where fp32 gives under 0.001); `auto` or `bf16`
    # speed up the Michel scores where the CPU has fast bf16
    precision: str = "fp32"
    seed: int = 0  # the subsample of max_examples, and the random classifier head of 'default'

    def validate(self) -> None:
        check(bool(self.target.strip()), "target", "no target given", "pass a run id or default")
        check(self.max_examples is None or self.max_examples >= 1, "max_examples", f"got {self.max_examples}",
              "use >= 1, or omit it for the whole evaluation split")
        check(2 <= self.ig_steps <= 512, "ig_steps", f"got {self.ig_steps}", "use e.g. 8 (2..512)")
        check(self.ig_examples is None or self.ig_examples >= 1, "ig_examples", f"got {self.ig_examples}",
              "use >= 1, or omit it for every example")
        check(self.batch_size >= 1, "batch_size", f"got {self.batch_size}", "use e.g. 32")
        check(self.precision in PRECISIONS, "precision", f"got {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")


def load_explained(store: RunStore, target: str, num_labels: int = 2, seed: int = 0) -> Explained:
    """The model of a run with weights (or 'default', with a seeded classifier head), with its heads' ids."""
    if target == "default":
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = models.load_encoder_classifier("default", num_labels)
        return Explained("default", model.eval(), models.load_tokenizer("default"), None, [UNTRAINED_HEAD])
    record = store.require(target)
    if record.kind not in ("finetune", "prune"):
        raise ConfigError(f"run {target} is a {record.kind} run, which holds no model",
                          fix="pick a finetune or prune run that kept its weights, or default")
    model, tokenizer, _ = load_run_model(store, target, encoder_only=True)
    return Explained(target, model.eval(), tokenizer, original_head_ids(store, target, model))


def original_head_ids(store: RunStore, run_id: str, model: nn.Module) -> list[list[int]]:
    """Per layer, the original index of each remaining head (from a head-pruned run's stored selection)."""
    counts = kept_heads(model)
    ids = [list(range(n)) for n in counts]
    if "structure.json" in store.artefacts(run_id):
        kept = store.load_artifact_json(run_id, "structure").get("kept_heads")
        if kept and len(kept) == len(counts) and all(len(kept[str(l)]) == n for l, n in enumerate(counts)):
            ids = [sorted(int(h) for h in kept[str(l)]) for l in range(len(counts))]
    return ids


def data_config(store: RunStore, config: HeadsConfig) -> tuple[DataConfig, int]:
    """(the evaluation data, the seed it was drawn with): the run's own unless a dataset is named."""
    if config.target != "default":
        run_config = store.require(config.target).config
        if not config.dataset and "data" in run_config:
            return DataConfig.from_dict(run_config["data"], where=f"data of run {config.target}"), int(
                run_config.get("seed", 0))
        max_length = int(run_config.get("data", {}).get("max_length", 128))
        return DataConfig(dataset=config.dataset or DEFAULT_DATASET, max_length=max_length), 0
    return DataConfig(dataset=config.dataset or DEFAULT_DATASET), 0


@dataclass
class Prepared:
    config: HeadsConfig
    explained: Explained
    enc: Encoded
    ig_enc: Encoded  # the subset integrated gradients runs on
    num_labels: int
    dataset: str


@EXPERIMENTS.register("heads")
class HeadsRun(Experiment):
    config_cls = HeadsConfig

    def describe(self, config: HeadsConfig) -> dict[str, Any]:
        dataset = data_config(RunStore(), config)[0].dataset
        return {"method": "heads", "dataset": dataset, "model": config.target, "seed": config.seed,
                "label": f"head importance of {config.target}"}

    def fingerprints(self, config: HeadsConfig) -> dict[str, str]:
        store = RunStore()
        target = config.target
        model = models.fingerprint("default") if target == "default" else f"run:{store.require(target).run_id}"
        return {"model": model, "data": data_mod.fingerprint(data_config(store, config)[0])}

    def prepare(self, config: HeadsConfig, device: str) -> Prepared:
        store = RunStore()
        cfg, seed = data_config(store, config)
        task = data_mod.load_task(cfg, seed, need_train=False)
        labels = 1 if task.card.task == "regression" else task.card.num_labels
        explained = load_explained(store, config.target, labels, config.seed)
        if int(explained.model.config.num_labels) != labels:
            raise ConfigError(f"{cfg.dataset} has {labels} labels but the model of {config.target} predicts "
                              f"{explained.model.config.num_labels}", fix="score it on a dataset with its label set")
        dev = task.eval
        if config.max_examples is not None and config.max_examples < len(dev):
            dev = data_mod.subsample(dev, config.max_examples, config.seed, "max_examples")
        ig_dev = dev
        if config.ig_examples is not None and config.ig_examples < len(dev):
            ig_dev = data_mod.subsample(dev, config.ig_examples, config.seed, "ig_examples")
        explained.model.to(torch.device(device))
        tokenizer = explained.tokenizer
        return Prepared(config, explained, encode(dev, tokenizer, cfg.max_length),
                        encode(ig_dev, tokenizer, cfg.max_length), labels, cfg.dataset)

    def run(self, prepared: Prepared, ctx: RunContext) -> RunResult:
        config, model, enc = prepared.config, prepared.explained.model, prepared.enc
        per_example = example_losses(prepared.num_labels, config.precision)
        steps, ig_steps = -(-len(enc) // config.batch_size), -(-len(prepared.ig_enc) // config.batch_size)
        total = steps + ig_steps
        start = time.perf_counter()
        michel = head_importance(model, labelled_batches(model, enc, config.batch_size, prepared.explained.tokenizer,
                                                         lambda i: ctx.progress(i, total, "Michel importance")),
                                 lambda m, b: per_example(m, b).mean())
        michel_seconds = time.perf_counter() - start
        ig = gate_integrated_gradients(model, labelled_batches(
            model, prepared.ig_enc, config.batch_size, prepared.explained.tokenizer,
            lambda i: ctx.progress(steps + i, total, "integrated gradients")), per_example, config.ig_steps,
            internal_batch_size=max(IG_ROWS, config.batch_size))
        ig_seconds = time.perf_counter() - start - michel_seconds
        ids = prepared.explained.head_ids or [list(range(n)) for n in kept_heads(model)]
        heads = Arch(model).num_heads  # the config keeps the original count after heads are removed
        grids = {"michel": on_original_heads(michel, ids, heads), "ig": on_original_heads(ig.importance, ids, heads),
                 "ig_mean": on_original_heads(ig.mean, ids, heads)}
        ctx.save_arrays("head_importance", {**grids, "ig_deltas": ig.deltas, "ig_totals": ig.totals})
        summary = {"target": config.target, "dataset": prepared.dataset, "examples": len(enc),
                   "ig_examples": len(prepared.ig_enc),
                   "head_ids": ids, "notes": prepared.explained.notes, "ig_steps": config.ig_steps}
        metrics = {"ig_relative_delta": ig.relative_delta, "ig_max_abs_delta": float(np.abs(ig.deltas).max(initial=0)),
                   "michel_seconds": michel_seconds, "ig_seconds": ig_seconds}
        ctx.save_json("heads", {**summary, **metrics, **{k: nan_to_none(v) for k, v in grids.items()}})
        ctx.progress(total, total, "done")
        return RunResult(metrics, summary)


def example_losses(num_labels: int, precision: str = "fp32") -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """Per-example task loss (cross-entropy, or squared error for regression) of a labelled batch, the forward
    pass in `precision`."""

    def losses(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(batch["labels"].device, precision):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        if num_labels == 1:
            return (logits.squeeze(-1) - batch["labels"].float()) ** 2
        return nn.functional.cross_entropy(logits, batch["labels"], reduction="none")

    return losses


def labelled_batches(model: nn.Module, enc: Encoded, batch_size: int, tokenizer: Any,
                     progress: Callable[[int], None] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Length-bucketed evaluation batches with their labels, on the model's device."""
    device = next(model.parameters()).device
    labels = torch.from_numpy(np.asarray(enc.labels))
    for i, (idx, batch) in enumerate(iterate(enc, batch_size, tokenizer.pad_token_id or 0,
                                             accepts_token_types(model), shuffle=False)):
        if progress:
            progress(i)
        yield {**{k: v.to(device) for k, v in batch.items()}, "labels": labels[idx].to(device)}


def nan_to_none(grid: np.ndarray) -> list[list[float | None]]:
    """A JSON-safe grid: removed heads (NaN) become null."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in grid]


def stored_importance(store: RunStore, target: str) -> dict[str, Any] | None:
    """The newest finished `heads` run of `target`: its JSON artefact plus its run id, or None."""
    for row in store.list(kind="heads", status="done"):
        run = store.get(row["run_id"])
        if run is not None and run.config.get("target") == target and "heads.json" in store.artefacts(row["run_id"]):
            return {"run_id": row["run_id"], **store.load_artifact_json(row["run_id"], "heads")}
    return None
