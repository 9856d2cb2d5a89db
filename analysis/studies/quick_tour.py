"""`python -m analysis demo`: a small real study on the embedded default model, for a first look.

A fine-tune on an SST-2 subset, a pruning sweep (SparseBERT, gradual magnitude and small-dense at 0.5 and
0.9, one epoch), knowledge-loss probes of the dense model and of each method's most pruned model, and
head importance of the dense model when a `heads` experiment is registered. The demo is one config, so
one run: every part is an ordinary run in the store, found again instead of re-run, and the dashboard
launches the whole demo through the job queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analysis.core.config import ConfigBase, FinetuneConfig, check
from analysis.core.errors import ConfigError
from analysis.methods.probes import PROBES
from analysis.methods.pruning import PRUNING_METHODS, PruneConfig
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult, execute
from analysis.runs.finetune import input_fingerprints
from analysis.runs.probe import ProbeConfig
from analysis.studies.pruning_sweep import PruningSweepConfig

HEADS_TARGET_FIELDS = ("target", "run_id", "run")  # how a heads config may name the run it looks at


def demo_finetune() -> FinetuneConfig:
    """2,000 SST-2 training sentences, one epoch, the embedded default model, the full dev set."""
    return FinetuneConfig.from_flat({}, {"dataset": "sst2", "train_size": 2000, "epochs": 1})


@dataclass(frozen=True)
class DemoConfig(ConfigBase):
    """A small real study: a fine-tune, a pruning sweep, probes and head importance (minutes on a CPU)."""

    finetune: FinetuneConfig = field(default_factory=demo_finetune)
    methods: tuple[str, ...] = ("sparsebert", "gradual-magnitude", "small-dense")
    sparsities: tuple[float, ...] = (0.5, 0.9)
    probes: tuple[str, ...] = ("fidelity", "cka", "layer-probe")
    head_importance: bool = True
    head_examples: int | None = 500  # dev examples for head importance (None: all)

    def validate(self) -> None:
        check(len(self.methods) > 0 and len(self.sparsities) > 0, "methods", "the sweep is empty",
              "give at least one method and one sparsity")
        for name in self.methods:
            PRUNING_METHODS.get(name)
        for name in self.probes:
            PROBES.get(name)
        for s in self.sparsities:
            check(0 <= s < 1, "sparsities", f"sparsity {s} is outside [0, 1)", "use values like 0.5,0.9")
        check(self.finetune.method == "vanilla" and not self.finetune.options, "method",
              "the demo's fine-tune is the pruning teacher, so it is plain fine-tuning",
              "leave method and options unset")
        check(self.head_examples is None or self.head_examples >= 1, "head_examples", f"got {self.head_examples}",
              "use e.g. 500, or leave it empty for the whole dev set")
        check(self.finetune.model.is_transformer, "model", "the demo prunes a transformer", "use --model default")

    def sweep(self) -> PruningSweepConfig:
        """The pruning sweep; its teacher is the demo's fine-tune (same model, data, training, seed)."""
        ft = self.finetune
        base = PruneConfig(model=ft.model, data=ft.data, train=ft.train, teacher_seed=ft.seed)
        return PruningSweepConfig(prune=base, methods=self.methods, sparsities=self.sparsities, seeds=(ft.seed,))


def heads_config(target: str, examples: int | None = None) -> tuple[ConfigBase | None, str]:
    """The head-importance config for a run, or None and why it is skipped."""
    if "heads" not in EXPERIMENTS:
        return None, "head importance skipped: this version has no `heads` experiment"
    cls = EXPERIMENTS.get("heads").config_cls
    key = next((k for k in HEADS_TARGET_FIELDS if k in cls.flat_fields()), None)
    if key is None:
        return None, f"head importance skipped: the heads config names no run ({', '.join(cls.flat_fields())})"
    size = {"max_examples": examples} if examples and "max_examples" in cls.flat_fields() else {}
    try:
        return cls.from_flat({}, {key: target, **size}), ""
    except ConfigError as exc:
        return None, f"head importance skipped: {exc.message}"


class _Stages:
    """Maps each step's own progress into one bar for the whole demo."""

    def __init__(self, ctx: RunContext, total: int):
        self.ctx, self.total, self.index = ctx, total, 0

    def run(self, kind: str, config: ConfigBase, label: str) -> Any:
        base = self.index * 1000

        def progress(done: int, total: int, message: str) -> None:
            self.ctx.progress(base + int(1000 * min(done, total) / max(total, 1)), self.total * 1000,
                              f"{label} ({self.index + 1}/{self.total}): {message}")

        progress(0, 1, "starting")
        record = execute(kind, config, self.ctx.store, device=self.ctx.device, save_weights=True,
                         progress=progress).record
        self.index += 1
        return record


@EXPERIMENTS.register("demo")
class Demo(Experiment):
    config_cls = DemoConfig

    def describe(self, config: DemoConfig) -> dict[str, Any]:
        data = config.finetune.data
        return {"method": "demo", "dataset": data.dataset, "model": config.finetune.model.model,
                "seed": config.finetune.seed, "label": f"demo study {data.dataset} n={data.train_size or 'all'}"}

    def fingerprints(self, config: DemoConfig) -> dict[str, str]:
        return input_fingerprints(config.finetune.model, config.finetune.data)

    def prepare(self, config: DemoConfig, device: str) -> DemoConfig:
        EXPERIMENTS.get("sweep-pruning")().prepare(config.sweep(), device)
        return config

    def run(self, config: DemoConfig, ctx: RunContext) -> RunResult:
        wants_heads = config.head_importance and "heads" in EXPERIMENTS
        stages = _Stages(ctx, 2 + (1 + len(config.methods) if config.probes else 0) + wants_heads)
        dense = stages.run("finetune", config.finetune, "fine-tune")
        metric = dense.summary.get("metric")
        sweep = stages.run("sweep-pruning", config.sweep(), "pruning sweep")
        members = ctx.store.load_artifact_json(sweep.run_id, "table")
        rows = [{"step": "finetune", "run_id": dense.run_id, "method": "dense", "sparsity": 0.0,
                 "metric": metric, "value": dense.metrics.get(metric)}]
        rows += [{"step": "prune", **{k: m[k] for k in ("run_id", "method", "sparsity", "metric", "value")}}
                 for m in members]
        most = max(config.sparsities)
        targets = [dense.run_id] + [m["run_id"] for m in members if m["sparsity"] == most]
        for target in targets if config.probes else []:
            rec = stages.run("probe", ProbeConfig(target=target, probes=config.probes), f"probes of {target}")
            rows.append({"step": "probe", "run_id": rec.run_id, "target": target, **rec.metrics})
        heads_cfg, note = heads_config(dense.run_id, config.head_examples) if config.head_importance else (None, "")
        if heads_cfg is not None:
            rows.append({"step": "heads", "run_id": stages.run("heads", heads_cfg, "head importance").run_id,
                         "target": dense.run_id})
        ctx.save_json("table", rows)
        metrics = {metric: dense.metrics.get(metric)} if metric else {}
        metrics.update({f"{m['method']}_{round(100 * m['sparsity'])}": m["value"] for m in members
                        if m["value"] is not None})
        run_ids = list(dict.fromkeys([sweep.run_id] + [r["run_id"] for r in rows]))
        summary = {"metric": metric, "run_ids": run_ids,
                   "finetune": dense.run_id, "sweep": sweep.run_id, "notes": [note] if note else []}
        return RunResult(metrics, summary, {"table": rows})
