"""The pretrain-or-not study (Wang et al., ACL 2020): metric vs training-set size for a fine-tuned
pretrained transformer, an LSTM from scratch, and the same LSTM with pretrained token embeddings; optionally the
floor arm `embedding-bag` (the transformer's token embeddings mean-pooled, no encoder).

Each (arm, size, seed) is one fine-tune run in the store, so an interrupted study resumes where it
stopped. Budgets are documented and per arm: epochs = clip(budget_examples / size, min, max), the best
epoch chosen by the metric (ties broken by the loss) on a held-out 10% of the training subset (early
stopping), never on the evaluation split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from analysis.core.config import SELECT_ON, ConfigBase, FinetuneConfig, ModelConfig, check
from analysis.core.errors import DataError
from analysis.core.registry import Registry
from analysis.core.stats import describe
from analysis.data.tasks import get_card, is_user_file, load_split
from analysis.runs.executors import Member, run_members
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult
from analysis.runs.finetune import input_fingerprints
from analysis.studies import progress
from analysis.studies.curves import break_even, fit_curve

ARMS: Registry[Callable[["ScaleConfig"], ModelConfig]] = Registry("data-scale arm")


@ARMS.register("transformer")
def transformer_arm(config: "ScaleConfig") -> ModelConfig:
    return config.finetune.model


@ARMS.register("lstm")
def lstm_arm(config: "ScaleConfig") -> ModelConfig:
    return config.finetune.model.replace(model="lstm", tokenizer=config.finetune.model.model, lstm_embeddings="random")


@ARMS.register("lstm-pretrained")
def lstm_pretrained_arm(config: "ScaleConfig") -> ModelConfig:
    return lstm_arm(config).replace(lstm_embeddings="pretrained")


@ARMS.register("embedding-bag")
def embedding_bag_arm(config: "ScaleConfig") -> ModelConfig:
    """The floor: the transformer's own token embeddings, mean-pooled, no encoder (trained like the LSTMs)."""
    return config.finetune.model.replace(model="embedding-bag", tokenizer=config.finetune.model.model)


@dataclass(frozen=True)
class ScaleConfig(ConfigBase):
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    sizes: tuple[int, ...] = (100, 300, 1000, 3000, 10000, 30000)
    fractions: tuple[float, ...] | None = None  # the paper's grid: 0.01,0.1,0.3,0.5,0.7,0.9 (replaces sizes)
    include_full: bool = True  # also the whole training split
    full_seeds: int = 1  # seeds at the whole split (the most expensive point)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ("transformer", "lstm", "lstm-pretrained")
    transformer_lr: float = 1e-4
    lstm_lr: float = 2e-3  # the lstm_* settings train every arm but the transformer (the embedding bag too)
    lstm_batch_size: int = 128
    transformer_budget: int = 20000  # examples seen at most (epochs = budget / size, clipped)
    lstm_budget: int = 200000
    min_epochs: float = 2.0
    transformer_max_epochs: float = 10.0
    lstm_max_epochs: float = 30.0
    holdout: float = 0.1
    early_stop_patience: int = 3
    # What picks the best epoch on the held-out part (the runs' select_on). The metric with ties broken by the
    # loss: at n = 100 the part has 10 examples, whose accuracy moves in steps of 0.1 and ties (which stopped
    # training early); the loss alone picked epochs too early (it rises while accuracy still climbs).
    early_stop_on: str = "metric-then-loss"

    def validate(self) -> None:
        check(len(self.seeds) > 0 and len(self.arms) > 0, "seeds", "the grid is empty", "give seeds and arms")
        check(len(self.sizes) > 0 or bool(self.fractions) or self.include_full, "sizes", "the grid is empty",
              "give --sizes or --fractions")
        for s in self.sizes:
            check(s >= 10, "sizes", f"size {s} is too small to hold out a part", "use sizes >= 10")
        for f in self.fractions or ():
            check(0 < f <= 1, "fractions", f"fraction {f} is outside (0, 1]", "use e.g. 0.01,0.1,0.5")
        for arm in self.arms:
            ARMS.get(arm)
        check(self.early_stop_on in SELECT_ON, "early_stop_on", f"got {self.early_stop_on!r}",
              f"use one of {', '.join(SELECT_ON)}")
        check(1 <= self.full_seeds <= len(self.seeds), "full_seeds", f"got {self.full_seeds}",
              "use between 1 and the number of seeds")

    def training_rows(self) -> int:
        data = self.finetune.data
        if not is_user_file(data.dataset) and "train" not in get_card(data.dataset).splits:
            raise DataError(f"dataset {data.dataset!r} has no training split", fix="pick a dataset with one")
        return len(load_split(data, "train"))

    def points(self, total: int) -> list[tuple[int, tuple[int, ...]]]:
        """(size, seeds) pairs: the sizes (or fractions of the split), then the whole split."""
        sizes = [max(10, round(f * total)) for f in self.fractions] if self.fractions else list(self.sizes)
        too_big = [s for s in sizes if s > total]
        if too_big:
            raise DataError(f"sizes {too_big} are larger than the training split ({total} rows)",
                            fix=f"use sizes up to {total} (the whole split is included with --include-full)")
        out = [(s, tuple(self.seeds)) for s in sorted(set(sizes)) if s < total]
        if self.include_full or total in sizes:
            out.append((total, tuple(self.seeds[: self.full_seeds])))
        return out

    def run_config(self, arm: str, size: int, total: int, seed: int) -> FinetuneConfig:
        is_lstm = arm != "transformer"
        budget, cap = (self.lstm_budget, self.lstm_max_epochs) if is_lstm else (self.transformer_budget,
                                                                                  self.transformer_max_epochs)
        epochs = float(min(cap, max(self.min_epochs, math.ceil(budget / size))))
        train = self.finetune.train.replace(epochs=epochs, holdout_fraction=self.holdout, patience=self.early_stop_patience,
                                            select_on=self.early_stop_on,
                                            lr=self.lstm_lr if is_lstm else self.transformer_lr,
                                            batch_size=self.lstm_batch_size if is_lstm else self.finetune.train.batch_size,
                                            fused_optimizer=is_lstm or self.finetune.train.fused_optimizer)
        data = self.finetune.data.replace(train_size=None if size >= total else size)
        return self.finetune.replace(model=ARMS.get(arm)(self), data=data, train=train, seed=seed,
                                     method="vanilla", options={})


@EXPERIMENTS.register("study-scale")
class DataScaleStudy(Experiment):
    config_cls = ScaleConfig

    def describe(self, config: ScaleConfig) -> dict[str, Any]:
        return {"method": "study", "dataset": config.finetune.data.dataset, "model": config.finetune.model.model,
                "seed": None, "label": f"data-scale study {','.join(config.arms)}"}

    def fingerprints(self, config: ScaleConfig) -> dict[str, str]:
        return input_fingerprints(config.finetune.model, config.finetune.data)

    def prepare(self, config: ScaleConfig, device: str) -> tuple[ScaleConfig, int, list]:
        total = config.training_rows()
        return config, total, config.points(total)

    def run(self, prepared: tuple[ScaleConfig, int, list], ctx: RunContext) -> RunResult:
        config, total, points = prepared
        grid = [(arm, size, seed) for size, seeds in points for seed in seeds for arm in config.arms]
        rows: list[dict[str, Any]] = [{} for _ in grid]

        def done(i: int, rec: Any) -> None:
            rows[i] = point_row(*grid[i], rec)
            ctx.log({"event": "run_done", **rows[i]})

        run_members(ctx, [Member("finetune", config.run_config(arm, size, total, seed), f"{arm} n={size} seed={seed}",
                                 save_weights=False) for arm, size, seed in grid], done)
        summary = summarise(rows, config.arms)
        ctx.save_json("table", rows)
        ctx.save_json("summary", summary)
        ctx.progress(len(grid), len(grid), "done")
        return RunResult({}, {"runs": len(rows), "run_ids": [r["run_id"] for r in rows]}, {"table": rows})


def point_row(arm: str, size: int, seed: int, rec: Any) -> dict[str, Any]:
    s = rec.summary
    params = s.get("parameters", 0)
    return {"arm": arm, "size": size, "seed": seed, "run_id": rec.run_id, "metric": s.get("metric"),
            "value": rec.metrics.get(s.get("metric")), "train_seconds": s.get("train_seconds"),
            "examples_seen": s.get("examples_seen"), "tokens_seen": s.get("tokens_seen"),
            # ~6 FLOPs per parameter per token for a forward and backward pass
            "flops_estimate": 6.0 * params * (s.get("tokens_seen") or 0), "chosen_epoch": s.get("chosen_epoch")}


def summarise(rows: list[dict[str, Any]], arms: tuple[str, ...]) -> dict[str, Any]:
    """Per (arm, size): mean, std, 95% interval; the gap to the transformer per size; fitted curves; break-even."""
    cells = []
    for arm in arms:
        for size in sorted({r["size"] for r in rows if r["arm"] == arm}):
            values = [r["value"] for r in rows if r["arm"] == arm and r["size"] == size]
            cells.append({"arm": arm, "size": size, **describe(values)})
    mean = {(c["arm"], c["size"]): c["mean"] for c in cells}
    gaps = [{"arm": arm, "size": size, "gap": mean[("transformer", size)] - mean[(arm, size)]}
            for (arm, size) in mean if arm != "transformer" and ("transformer", size) in mean]
    curves = {}
    for arm in arms:
        pts = [(c["size"], c["mean"]) for c in cells if c["arm"] == arm and c["n"] > 0]
        curves[arm] = fit_curve([p[0] for p in pts], [p[1] for p in pts])
    crossings = {arm: break_even(curves["transformer"], curves[arm], max(r["size"] for r in rows))
                 for arm in arms if arm != "transformer" and "transformer" in curves}
    return {"cells": cells, "gaps": gaps, "curves": curves, "break_even": crossings}


def _partial(record: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    arms = tuple(record.config.get("arms") or sorted({r["arm"] for r in rows}))
    arms = tuple(a for a in arms if any(r["arm"] == a for r in rows))
    return summarise(rows, arms) if rows else {"cells": [], "gaps": [], "curves": {}, "break_even": {}}


def study_inputs(store: Any, run_id: str) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """(per-run rows, summary, complete) of a data-scale study; a running or stopped one from its finished points."""
    return progress.study_inputs(store, run_id, _partial)
