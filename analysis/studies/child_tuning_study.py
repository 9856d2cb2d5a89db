"""The Child-Tuning study: {vanilla, child-f, child-d} x p grid x seeds x tasks, resumable; mean +- std per
cell, paired differences against vanilla with the same seed, domain transfer, and D-mask overlaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from analysis.core.config import ConfigBase, DataConfig, FinetuneConfig, check
from analysis.core.stats import describe, jaccard, paired_difference
from analysis.data.tasks import get_card, load_split
from analysis.runs.executors import Member, run_members
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult
from analysis.runs.finetune import input_fingerprints
from analysis.store.index import RunStore
from analysis.studies import progress
from analysis.training.evaluate import evaluate_on


@dataclass(frozen=True)
class ChildTuningStudyConfig(ConfigBase):
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig.from_flat({}, {"train_size": 1000}))
    tasks: tuple[str, ...] = ("cola", "rte", "mrpc", "stsb", "sst2")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    p_f: tuple[float, ...] = (0.3,)  # the paper's grid: 0.2, 0.3, 0.4
    p_d: tuple[float, ...] = (0.3,)  # the paper's grid: 0.1, 0.2, 0.3
    transfer_from: str | None = "sst2"
    transfer_to: tuple[str, ...] = ("imdb", "mr", "cr")
    transfer_eval_size: int | None = 2000  # at most this many evaluation examples per transfer set (IMDB has 25,000)

    def validate(self) -> None:
        check(len(self.tasks) > 0 and len(self.seeds) > 0, "tasks", "the grid is empty", "give tasks and seeds")
        for p in self.p_f + self.p_d:
            check(0 < p <= 1, "p_f", f"child fraction {p} is outside (0, 1]", "use values like 0.2,0.3")
        check(self.transfer_from is None or self.transfer_from in self.tasks, "transfer_from",
              f"{self.transfer_from!r} is not one of the tasks", "add it to --tasks or unset it")

    def arms(self) -> list[tuple[str, float | None]]:
        return [("vanilla", None)] + [("child-f", p) for p in self.p_f] + [("child-d", p) for p in self.p_d]

    def grid(self) -> list[tuple[str, str, float | None, int, FinetuneConfig]]:
        out = []
        for task in self.tasks:
            for seed in self.seeds:
                for method, p in self.arms():
                    options = {} if p is None else {"p": p}
                    cfg = self.finetune.replace(data=self.finetune.data.replace(dataset=task), method=method,
                                                options=options, seed=seed)
                    out.append((task, method, p, seed, cfg))
        return out


@EXPERIMENTS.register("study-child-tuning")
class ChildTuningStudy(Experiment):
    config_cls = ChildTuningStudyConfig

    def describe(self, config: ChildTuningStudyConfig) -> dict[str, Any]:
        return {"method": "study", "dataset": ",".join(config.tasks), "model": config.finetune.model.model,
                "seed": None, "label": f"Child-Tuning study {len(config.tasks)} tasks x {len(config.seeds)} seeds"}

    def fingerprints(self, config: ChildTuningStudyConfig) -> dict[str, str]:
        base = config.finetune
        return {task: str(input_fingerprints(base.model, base.data.replace(dataset=task))) for task in config.tasks}

    def prepare(self, config: ChildTuningStudyConfig, device: str) -> ChildTuningStudyConfig:
        return config

    def run(self, config: ChildTuningStudyConfig, ctx: RunContext) -> RunResult:
        grid = config.grid()
        rows: list[dict[str, Any]] = [{} for _ in grid]

        def done(i: int, rec: Any) -> None:
            task, method, p, seed, _ = grid[i]
            metric = rec.summary.get("metric")
            rows[i] = {"task": task, "method": method, "p": p, "seed": seed, "run_id": rec.run_id,
                       "metric": metric, "value": rec.metrics.get(metric), "status": rec.status}
            ctx.log({"event": "run_done", **rows[i]})

        run_members(ctx, [Member("finetune", cfg, f"{task} {method} p={p} seed={seed}")
                          for task, method, p, seed, cfg in grid], done)
        transfer = self.transfer(config, rows, ctx)
        summary = {"cells": summarise(rows), "transfer": transfer, "mask_overlap": mask_overlap(ctx.store, rows)}
        ctx.save_json("table", rows)
        ctx.save_json("summary", summary)
        ctx.progress(len(grid), len(grid), "done")
        return RunResult({}, {"runs": len(rows)}, {"table": rows})

    @staticmethod
    def transfer(config: ChildTuningStudyConfig, rows: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
        out = []
        sizes = {target: transfer_size(target, config.transfer_eval_size) for target in config.transfer_to}
        sources = [r for r in rows if r["task"] == config.transfer_from]
        for i, row in enumerate(sources):
            ctx.progress(i, len(sources), f"transfer: evaluating {row['method']} seed {row['seed']} on "
                                          f"{', '.join(config.transfer_to)}")
            for target in config.transfer_to:
                result = evaluate_on(ctx.store, row["run_id"], target, sizes[target], seed=0, device=ctx.device)
                out.append({**{k: row[k] for k in ("method", "p", "seed", "run_id")}, "target": target,
                            "value": result["accuracy"], "examples": result["examples"]})
        return out


def transfer_size(dataset: str, at_most: int | None) -> int | None:
    """The evaluation size for a transfer set: `at_most`, or the whole split when it is smaller (CR has 755)."""
    if at_most is None:
        return None
    card = get_card(dataset)
    rows = len(load_split(DataConfig(dataset=dataset), card.default_eval_split))
    return None if rows <= at_most else at_most


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- std per (task, method, p), and the paired difference to vanilla over matching seeds."""
    cells = []
    for task in sorted({r["task"] for r in rows}):
        vanilla = {r["seed"]: r["value"] for r in rows if r["task"] == task and r["method"] == "vanilla"}
        for method, p in sorted({(r["method"], r["p"]) for r in rows if r["task"] == task}, key=str):
            mine = {r["seed"]: r["value"] for r in rows if r["task"] == task and r["method"] == method and r["p"] == p}
            seeds = sorted(set(mine) & set(vanilla))
            cell = {"task": task, "method": method, "p": p, **describe(list(mine.values()))}
            if method != "vanilla" and seeds:
                diff = paired_difference([mine[s] for s in seeds], [vanilla[s] for s in seeds])
                cell.update({f"diff_{k}": v for k, v in diff.items()})
            cells.append(cell)
    return cells


def mask_overlap(store: RunStore, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Jaccard overlap of the D masks: across seeds within a task, and across tasks for the same seed."""
    masks = {}
    for r in rows:
        if r["method"] == "child-d" and "child_mask.safetensors" in store.artefacts(r["run_id"]):
            packed = store.load_arrays(r["run_id"], "child_mask")
            masks[(r["task"], r["p"], r["seed"])] = np.concatenate([np.unpackbits(packed[k]) for k in sorted(packed)])
    seeds = [{"task": a[0], "p": a[1], "seeds": [a[2], b[2]], "jaccard": jaccard(masks[a], masks[b])}
             for a, b in combinations(sorted(masks, key=str), 2) if a[0] == b[0] and a[1] == b[1]]
    tasks = [{"tasks": [a[0], b[0]], "p": a[1], "seed": a[2], "jaccard": jaccard(masks[a], masks[b])}
             for a, b in combinations(sorted(masks, key=str), 2) if a[0] != b[0] and a[1:] == b[1:]]
    return {"across_seeds": seeds, "across_tasks": tasks}


def study_inputs(store: Any, run_id: str) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """(per-run rows, summary, complete) of a Child-Tuning study; an unfinished one from the runs finished so far
    (transfer is evaluated only at the end)."""
    return progress.study_inputs(store, run_id, lambda record, rows: {
        "cells": summarise(rows), "transfer": [], "mask_overlap": mask_overlap(store, rows)})
