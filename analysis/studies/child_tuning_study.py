"""The Child-Tuning study: {vanilla, child-f, child-d} x p grid x seeds x tasks, resumable; mean +- std per
cell, paired differences against vanilla with the same seed, domain transfer, and D-mask overlaps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from analysis.core.config import ConfigBase, DataConfig, FinetuneConfig, check, recorded_precision
from analysis.core.errors import ConfigError
from analysis.core.stats import describe, jaccard, paired_difference
from analysis.data.tasks import fingerprint as data_fingerprint
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
    # the paper tunes the learning rate and p per arm: with select_lrs, every (lr, p) of each arm is first trained
    # with seed `select_seed` on the training set minus a held-out share, the best held-out score picks the arm's
    # (lr, p) per task, and only then do the seeds run at the chosen values (on the whole training set)
    select_lrs: tuple[float, ...] = ()  # empty: no selection (the fine-tune's lr, every p of p_f and p_d)
    select_holdout: float = 0.2
    select_seed: int = 0
    # a series (task, arm, p) whose best held-out score sits at the top or bottom lr of the grid is not tuned: up to
    # this many times, such a series gets one more lr beyond that edge (the grid's step ratio further), until its best
    # is inside (0: the plain grid, as the paper)
    select_extend: int = 0

    def validate(self) -> None:
        check(len(self.tasks) > 0 and len(self.seeds) > 0, "tasks", "the grid is empty", "give tasks and seeds")
        for p in self.p_f + self.p_d:
            check(0 < p <= 1, "p_f", f"child fraction {p} is outside (0, 1]", "use values like 0.2,0.3")
        check(self.transfer_from is None or self.transfer_from in self.tasks, "transfer_from",
              f"{self.transfer_from!r} is not one of the tasks", "add it to --tasks or unset it")
        check(all(lr > 0 for lr in self.select_lrs), "select_lrs", f"got {self.select_lrs}", "e.g. 2e-5,5e-5,1e-4")
        check(0 < self.select_holdout < 0.5, "select_holdout", f"got {self.select_holdout}", "e.g. 0.2")
        check(self.select_extend >= 0, "select_extend", f"got {self.select_extend}", "0 (the plain grid), 1, 2, ...")
        check(not self.select_extend or len(set(self.select_lrs)) >= 2, "select_extend",
              "extending a grid beyond its edge needs at least two lrs (their ratio is the step)",
              "give two or more select_lrs, or select_extend 0")

    def arms(self) -> list[tuple[str, float | None]]:
        return [("vanilla", None)] + [("child-f", p) for p in self.p_f] + [("child-d", p) for p in self.p_d]

    def member(self, task: str, method: str, p: float | None, seed: int, lr: float | None = None,
               holdout: float = 0.0) -> FinetuneConfig:
        train = self.finetune.train.replace(lr=lr or self.finetune.train.lr, holdout_fraction=holdout)
        return self.finetune.replace(data=self.finetune.data.replace(dataset=task), method=method, train=train,
                                     options={} if p is None else {"p": p}, seed=seed)

    def selection_grid(self) -> list[tuple[str, str, float | None, float, FinetuneConfig]]:
        """(task, method, p, lr, config) of every candidate, trained with the held-out share set aside."""
        return [self.candidate(task, method, p, lr) for task in self.tasks for method, p in self.arms()
                for lr in self.select_lrs]

    def candidate(self, task: str, method: str, p: float | None, lr: float
                  ) -> tuple[str, str, float | None, float, FinetuneConfig]:
        """One selection candidate: (task, method, p, lr, its config with the held-out share set aside)."""
        return task, method, p, lr, self.member(task, method, p, self.select_seed, lr, self.select_holdout)

    def beyond_the_edge(self, rows: list[dict[str, Any]]) -> list[tuple[str, str, float | None, float, FinetuneConfig]]:
        """One more candidate for each series (task, arm, p) whose best held-out score is at the highest or lowest lr
        it has tried, strictly above every other lr's (a tie or a flat series is not extended): that lr times the
        ratio of the grid's top two lrs, or divided by the ratio of its bottom two."""
        lrs = sorted(set(self.select_lrs))
        up, down = lrs[-1] / lrs[-2], lrs[1] / lrs[0]
        out = []
        for (task, method, p), tried in _series(rows).items():
            edge = at_edge(tried)
            if edge is None:
                continue
            beyond = max(r["lr"] for r in tried) * up if edge == "top" else min(r["lr"] for r in tried) / down
            lr = float(f"{beyond:.6g}")  # 3 x 3e-4 is 9e-4, not 0.0008999999999999998
            if lr not in {r["lr"] for r in tried}:
                out.append(self.candidate(task, method, p, lr))
        return out

    def grid(self, chosen: dict[tuple[str, str], tuple[float, float | None]] | None = None
             ) -> list[tuple[str, str, float | None, int, FinetuneConfig]]:
        """The seeds of every arm: every p of the grid at the fine-tune's lr, or each arm's chosen (lr, p)."""
        out = []
        for task in self.tasks:
            for seed in self.seeds:
                if chosen is None:
                    arms = [(method, p, None) for method, p in self.arms()]
                else:
                    arms = [(method, chosen[(task, method)][1], chosen[(task, method)][0])
                            for method in dict.fromkeys(m for m, _ in self.arms())]
                for method, p, lr in arms:
                    out.append((task, method, p, seed, self.member(task, method, p, seed, lr)))
        return out


def _series(rows: list[dict[str, Any]]) -> dict[tuple[str, str, float | None], list[dict[str, Any]]]:
    """Selection rows by (task, arm, p)."""
    out: dict[tuple[str, str, float | None], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["task"], r["method"], r["p"]), []).append(r)
    return out


def at_edge(tried: list[dict[str, Any]]) -> str | None:
    """"top" or "bottom" when a series' best held-out score is at the highest or lowest lr it tried (scored or not)
    and strictly above every other lr's, else None."""
    scored = [r for r in tried if r.get("holdout") is not None]
    if not scored:
        return None
    best = max(r["holdout"] for r in scored)
    winners = {r["lr"] for r in scored if r["holdout"] == best}
    if len(winners) > 1:
        return None
    (lr,) = winners
    return "top" if lr == max(r["lr"] for r in tried) else "bottom" if lr == min(r["lr"] for r in tried) else None


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
        chosen = self.select(config, ctx) if config.select_lrs else None
        grid = config.grid(chosen)
        rows: list[dict[str, Any]] = [{} for _ in grid]
        sizes = TransferSizes(config.transfer_eval_size)

        def done(i: int, rec: Any) -> None:
            task, method, p, seed, cfg = grid[i]
            metric = rec.summary.get("metric")
            rows[i] = {"task": task, "method": method, "p": p, "lr": cfg.train.lr, "seed": seed, "run_id": rec.run_id,
                       "metric": metric, "value": rec.metrics.get(metric), "status": rec.status}
            ctx.log({"event": "run_done", **rows[i]})
            if task == config.transfer_from:
                self.transfer_early(config, rows[i], sizes, ctx)

        run_members(ctx, [Member("finetune", cfg, f"{task} {method} p={p} seed={seed}")
                          for task, method, p, seed, cfg in grid], done)
        transfer = self.transfer(config, rows, sizes, ctx)
        summary = {"cells": summarise(rows), "transfer": transfer, "mask_overlap": mask_overlap(ctx.store, rows)}
        ctx.save_json("table", rows)
        ctx.save_json("summary", summary)
        ctx.progress(len(grid), len(grid), "done")
        return RunResult({}, {"runs": len(rows)}, {"table": rows})

    @staticmethod
    def select(config: ChildTuningStudyConfig, ctx: RunContext) -> dict[tuple[str, str], tuple[float, float | None]]:
        """Train every (lr, p) candidate of each arm on the training set minus the held-out share (seed
        `select_seed`), extended beyond the grid's edge where a series is best there (`select_extend`); each arm's
        best held-out score (its best epoch) picks its (lr, p) per task."""
        rows = ChildTuningStudy.candidates(config.selection_grid(), ctx)
        for _ in range(config.select_extend):
            more = config.beyond_the_edge(rows)
            if not more:
                break
            rows += ChildTuningStudy.candidates(more, ctx)
        chosen = choose(rows)
        series = _series(rows)
        ctx.save_json("selection", {"candidates": rows, "chosen": [
            {"task": t, "method": m, "lr": lr, "p": p, "at_edge": at_edge(series[(t, m, p)])}
            for (t, m), (lr, p) in sorted(chosen.items())]})
        return chosen

    @staticmethod
    def candidates(grid: list[tuple[str, str, float | None, float, FinetuneConfig]], ctx: RunContext
                   ) -> list[dict[str, Any]]:
        """Run selection candidates; one row each (its best held-out score over epochs, and its dev score)."""
        rows: list[dict[str, Any]] = [{} for _ in grid]

        def done(i: int, rec: Any) -> None:
            task, method, p, lr, _ = grid[i]
            metric = rec.summary.get("metric")
            held = [e.get(f"holdout_{metric}") for e in rec.summary.get("epoch_metrics") or []]
            held = [h for h in held if h is not None and math.isfinite(h)]  # a diverged run can score NaN
            rows[i] = {"task": task, "method": method, "p": p, "lr": lr, "run_id": rec.run_id, "metric": metric,
                       "holdout": max(held) if held else None, "dev": rec.metrics.get(metric), "status": rec.status}
            ctx.log({"event": "selection_done", **rows[i]})

        run_members(ctx, [Member("finetune", cfg, f"select {task} {method} p={p} lr={lr:g}")
                          for task, method, p, lr, cfg in grid], done)
        return rows

    @staticmethod
    def transfer_early(config: ChildTuningStudyConfig, row: dict[str, Any], sizes: TransferSizes, ctx: RunContext
                       ) -> None:
        """Evaluate a transfer source as soon as it finishes, while its weights are surely in this store: the results
        stay in its `transfer.json`, which an export keeps (weights it does not), so a study resumed in another store
        from exported members needs no weights. A failure here is logged; the study's transfer step tries again
        and reports it."""
        try:
            for target in config.transfer_to:
                transfer_metrics(ctx.store, row["run_id"], target, sizes[target], ctx.device)
        except Exception as exc:  # noqa: BLE001 (the members still training must not stop for this)
            ctx.log({"event": "transfer_deferred", "run_id": row["run_id"], "error": str(exc)})

    @staticmethod
    def transfer(config: ChildTuningStudyConfig, rows: list[dict[str, Any]], sizes: TransferSizes, ctx: RunContext
                 ) -> list[dict[str, Any]]:
        out = []
        sources = [r for r in rows if r["task"] == config.transfer_from]
        for i, row in enumerate(sources):
            ctx.progress(i, len(sources), f"transfer: evaluating {row['method']} seed {row['seed']} on "
                                          f"{', '.join(config.transfer_to)}")
            for target in config.transfer_to:
                result = transfer_metrics(ctx.store, row["run_id"], target, sizes[target], ctx.device)
                out.append({**{k: row[k] for k in ("method", "p", "seed", "run_id")}, "target": target,
                            "value": result["accuracy"], "examples": result["examples"]})
        return out


def transfer_metrics(store: RunStore, run_id: str, target: str, size: int | None, device: str) -> dict[str, Any]:
    """A member's metrics on a transfer set (seed 0 sample of `size`, or all of it), kept in the member's
    `transfer.json` so a study resumed after an interruption does not evaluate it again."""
    precision = recorded_precision(store.require(run_id).config) or "fp32"
    data = data_fingerprint(DataConfig(dataset=target))
    key = f"{target}:{'all' if size is None else size}:seed0:{precision}:{data}"
    kept = store.load_artifact_json(run_id, "transfer") if "transfer.json" in store.artefacts(run_id) else {}
    if key not in kept:
        kept = {**kept, key: evaluate_on(store, run_id, target, size, seed=0, device=device)}
        store.save_artifact_json(run_id, "transfer", kept)
    return kept[key]


class TransferSizes(dict):
    """{transfer set: its evaluation size}, each found once (`transfer_size` reads the whole split) when first asked."""

    def __init__(self, at_most: int | None):
        super().__init__()
        self.at_most = at_most

    def __missing__(self, dataset: str) -> int | None:
        self[dataset] = transfer_size(dataset, self.at_most)
        return self[dataset]


def transfer_size(dataset: str, at_most: int | None) -> int | None:
    """The evaluation size for a transfer set: `at_most`, or the whole split when it is smaller (CR has 755)."""
    if at_most is None:
        return None
    card = get_card(dataset)
    rows = len(load_split(DataConfig(dataset=dataset), card.default_eval_split))
    return None if rows <= at_most else at_most


def choose(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[float, float | None]]:
    """{(task, method): (lr, p)} with the best held-out score; ties go to the smaller lr, then the smaller p."""
    best: dict[tuple[str, str], tuple[Any, ...]] = {}
    for r in rows:
        if r.get("holdout") is None:
            continue
        key = (r["task"], r["method"])
        rank = (r["holdout"], -r["lr"], -(r["p"] or 0))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, r["lr"], r["p"])
    missing = {(r["task"], r["method"]) for r in rows} - set(best)
    if missing:
        raise ConfigError(f"no held-out score for {sorted(missing)}: their selection runs failed",
                          fix="see the failed runs with `python -m analysis runs --status failed`, then resume")
    return {key: (lr, p) for key, (_, lr, p) in best.items()}


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


def selection_inputs(store: Any, run_id: str) -> dict[str, Any] | None:
    """The study's choice of (lr, p) per arm and task: {"candidates", "chosen", "complete", "holdout", "seed"}.
    The stored selection once it has finished; before, the candidates finished so far (their `selection_done` log
    events) and nothing chosen. None for a study that chose nothing (no select_lrs)."""
    config = store.require(run_id).config
    if not config.get("select_lrs"):
        return None
    about = {"holdout": config.get("select_holdout"), "seed": config.get("select_seed")}
    if "selection.json" in store.artefacts(run_id):
        return {**store.load_artifact_json(run_id, "selection"), **about, "complete": True}
    return {"candidates": progress.finished_rows(store, run_id, "selection_done"), "chosen": [], **about,
            "complete": False}
