"""The pruning sweep: methods x sparsities x seeds, resumable (finished runs come from the store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analysis.core.config import ConfigBase, check
from analysis.core.errors import ConfigError
from analysis.methods.pruning import PRUNING_METHODS, PruneConfig
from analysis.runs.executors import Member, run_members
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult


@dataclass(frozen=True)
class PruningSweepConfig(ConfigBase):
    """Every (method, sparsity, seed) of the grid runs the shared `prune` settings."""

    prune: PruneConfig = field(default_factory=PruneConfig)
    methods: tuple[str, ...] = ("sparsebert", "gradual-magnitude", "random", "small-dense")
    sparsities: tuple[float, ...] = (0.5, 0.8, 0.9)
    seeds: tuple[int, ...] = (0,)
    method_options: dict = field(default_factory=dict)  # {method: {option: value}}

    def validate(self) -> None:
        check(len(self.methods) > 0 and len(self.sparsities) > 0 and len(self.seeds) > 0, "methods",
              "the grid is empty", "give at least one method, sparsity and seed")
        for s in self.sparsities:
            check(0 <= s < 1, "sparsities", f"sparsity {s} is outside [0, 1)", "use values like 0.5,0.8,0.9")
        check(not self.prune.options, "options", "per-run options are ambiguous in a sweep",
              "use method_options: {method: {option: value}} in the YAML file")

    def grid(self) -> list[PruneConfig]:
        """Seed by seed, the highest sparsity first: a sweep stopped part-way has whole seeds, and the sparsities
        that tell methods apart, done first (the order changes no run id)."""
        return [self.prune.replace(method=m, sparsity=s, seed=seed, options=dict(self.method_options.get(m, {})))
                for seed in self.seeds for s in sorted(self.sparsities, reverse=True) for m in self.methods]


@EXPERIMENTS.register("sweep-pruning")
class PruningSweep(Experiment):
    config_cls = PruningSweepConfig

    def describe(self, config: PruningSweepConfig) -> dict[str, Any]:
        return {"method": "sweep", "dataset": config.prune.data.dataset, "model": config.prune.model.model,
                "seed": None, "label": f"pruning sweep {','.join(config.methods)} x {len(config.sparsities)} sparsities"}

    def fingerprints(self, config: PruningSweepConfig) -> dict[str, str]:
        return EXPERIMENTS.get("prune")().fingerprints(config.prune)

    def prepare(self, config: PruningSweepConfig, device: str) -> PruningSweepConfig:
        for method in config.methods:
            PRUNING_METHODS.get(method).Options.from_dict(config.method_options.get(method, {}),
                                                          where=f"method_options.{method}")
        unknown = set(config.method_options) - set(config.methods)
        if unknown:
            raise ConfigError(f"method_options names methods not in the sweep: {sorted(unknown)}",
                              fix="add them to --methods or remove their options")
        return config

    def run(self, config: PruningSweepConfig, ctx: RunContext) -> RunResult:
        grid = config.grid()
        rows: list[dict[str, Any]] = [{} for _ in grid]

        def done(i: int, record: Any) -> None:
            rows[i] = sweep_row(grid[i], record)
            ctx.log({"event": "run_done", "index": i, **rows[i]})

        run_members(ctx, [Member("prune", c, f"{c.method} s={c.sparsity:g} seed={c.seed}", ctx.save_weights)
                          for c in grid], done)
        ctx.progress(len(grid), len(grid), "done")
        ctx.save_json("table", rows)
        return RunResult({}, {"runs": len(rows), "run_ids": [r["run_id"] for r in rows]}, {"table": rows})


def sweep_row(config: PruneConfig, record: Any) -> dict[str, Any]:
    s = record.summary
    metric = s.get("metric")
    return {"run_id": record.run_id, "method": config.method, "sparsity": config.sparsity, "seed": config.seed,
            "status": record.status, "metric": metric, "value": record.metrics.get(metric),
            "encoder_sparsity": s.get("encoder_sparsity"), "model_sparsity": s.get("model_sparsity"),
            "encoder_nonzero_params": s.get("encoder_nonzero_params"), "nonzero_params": s.get("nonzero_params"),
            "params": s.get("params"), "teacher": s.get("teacher")}
