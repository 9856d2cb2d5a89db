"""The probe experiment: probes of one model (a stored run, or 'default'), stored as a run of its own."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import torch

from analysis.core.config import PRECISIONS, ConfigBase, check
from analysis.core.errors import ConfigError
from analysis.core.precision import resolve
from analysis.methods.probes.base import PROBES, ProbeTarget
from analysis.methods.pruning.base import PruneConfig
from analysis.models import loading as models
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult, run_id
from analysis.runs.prune import teacher_config
from analysis.store.index import RunStore
from analysis.training.evaluate import load_run_model

DEFAULT_PROBES = ("fidelity", "cka", "transfer", "layer-probe", "mlm")


@dataclass(frozen=True)
class ProbeConfig(ConfigBase):
    target: str = "default"  # a run id, or 'default' for the original pre-trained model
    probes: tuple[str, ...] = DEFAULT_PROBES
    task: str | None = None  # the task of task-based probes (layer-probe) for a target without one ('default')
    precision: str = "auto"  # of the forward passes that extract features (analysis/core/precision.py)
    seed: int = 0  # draws the probe sentences (CKA's WikiText-2 sample, MLM's)

    def validate(self) -> None:
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}", "use e.g. --seed 0")
        check(self.precision in PRECISIONS, "precision", f"got {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")
        check(len(self.probes) > 0, "probes", "no probe named", f"use some of: {', '.join(DEFAULT_PROBES)}")
        for name in self.probes:
            PROBES.get(name)
        if self.task is not None:
            from analysis.data.tasks import get_card

            get_card(self.task)


def load_target(store: RunStore, name: str, device: torch.device, precision: str = "fp32") -> ProbeTarget:
    target = _load(str(store.root), name, str(device), resolve(precision, device))
    target.load = lambda other: load_target(store, other, device, precision)
    # looked up on every load, not cached with the model: the dense fine-tune may have finished since
    target.dense_reference = dense_reference(store, target.record) if target.record else None
    return target


def dense_reference(store: RunStore, record: dict[str, Any]) -> str | None:
    """The finished dense fine-tune a pruning run's `--teacher auto` resolves to, or None."""
    if record.get("kind") != "prune":
        return None
    reference = run_id("finetune", teacher_config(PruneConfig.from_dict(record["config"])))
    rec = store.get(reference)
    return reference if rec is not None and rec.status == "done" else None


@lru_cache(maxsize=8)  # the pre-trained model and a teacher are references for many probes
def _load(root: str, name: str, device: str, precision: str) -> ProbeTarget:
    store = RunStore(root)
    if name == "default":
        model = models.load_encoder_classifier("default", 2)
        return ProbeTarget(name, model, models.load_tokenizer("default"), {}, store, torch.device(device),
                           precision=precision)
    if store.get(name) is None:
        raise ConfigError(f"no run {name!r} in the store", fix="list runs with `python -m analysis runs`, or use default")
    model, tokenizer, _ = load_run_model(store, name, encoder_only=True)
    return ProbeTarget(name, model, tokenizer, store.record(name), store, torch.device(device), precision=precision)


@EXPERIMENTS.register("probe")
class ProbeRun(Experiment):
    config_cls = ProbeConfig

    def describe(self, config: ProbeConfig) -> dict[str, Any]:
        return {"method": "probe", "dataset": None, "model": config.target, "seed": config.seed,
                "label": f"probes of {config.target}"}

    def fingerprints(self, config: ProbeConfig) -> dict[str, str]:
        if config.target == "default":
            return {"model": models.fingerprint("default")}
        return {"run": config.target}

    def prepare(self, config: ProbeConfig, device: str) -> tuple[ProbeConfig, ProbeTarget]:
        target = replace(load_target(RunStore(), config.target, torch.device(device), config.precision),
                         seed=config.seed)  # a copy: the loaded target is cached and shared
        if config.task is None:
            return config, target
        if target.dataset not in (None, config.task):
            raise ConfigError(f"run {config.target} was trained on {target.dataset!r}, not {config.task!r}",
                              fix="drop --task: a run's probes use its own task (--task is for 'default')")
        return config, replace(target, task=config.task, cache={})

    def run(self, prepared: tuple[ProbeConfig, ProbeTarget], ctx: RunContext) -> RunResult:
        config, target = prepared
        results: dict[str, Any] = {}
        for i, name in enumerate(config.probes):
            ctx.progress(i, len(config.probes), f"probe {name}")
            probe = PROBES.get(name)()
            reason = probe.not_applicable(target)
            results[name] = {"applicable": False, "reason": reason} if reason else {"applicable": True,
                                                                                     **probe.run(target)}
            ctx.save_json("probes", results)
        ctx.progress(len(config.probes), len(config.probes), "done")
        return RunResult(headline(results), {"target": config.target, "probes": list(config.probes)},
                         {"probes": results})


def headline(results: dict[str, Any]) -> dict[str, float]:
    """A few scalars for the runs table."""
    out = {}
    if results.get("transfer", {}).get("applicable"):
        out["transfer_mean_accuracy"] = results["transfer"]["mean_accuracy"]
        out["sts_b_spearman"] = results["transfer"]["sts_b_spearman"]
    if results.get("fidelity", {}).get("applicable") and "agreement" in results["fidelity"]:
        out["teacher_agreement"] = results["fidelity"]["agreement"]
    return out
