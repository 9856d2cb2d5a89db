"""Comparing runs on the same dev examples: paired bootstrap intervals of metric differences, McNemar's
test on paired correct/incorrect predictions, the examples whose prediction flipped, and a config diff.

Every run is read from its stored predictions (`artefacts/predictions.safetensors`: outputs, example
indices, labels), aligned on the example index, so two runs are compared on exactly the same examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.core.errors import ConfigError, DataError
from analysis.store.index import RunStore
from analysis.training.metrics import METRICS


@dataclass(frozen=True)
class Predictions:
    """One run's dev-set outputs, sorted by example index."""

    run_id: str
    indices: np.ndarray
    outputs: np.ndarray  # logits (n, classes) or values (n,)
    labels: np.ndarray
    metrics: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        return self.outputs.ndim == 1

    @property
    def predicted(self) -> np.ndarray:
        return self.outputs if self.is_regression else self.outputs.argmax(-1)


def load_predictions(store: RunStore, run_id: str) -> Predictions:
    """A run's stored dev predictions, sorted by example index, with the metric names it reported."""
    record = store.require(run_id)
    raw = store.load_arrays(run_id, "predictions")
    order = np.argsort(raw["indices"], kind="stable")
    outputs = raw["outputs"][order].astype(np.float64)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]  # regression: one value per example
    names = tuple(k for k in record.metrics if k in METRICS) or (record.summary.get("metric") or "accuracy",)
    return Predictions(run_id, raw["indices"][order], outputs, raw["labels"][order], names)


def check_aligned(runs: Sequence[Predictions]) -> None:
    """Refuse runs that were not evaluated on the same examples with the same labels."""
    first = runs[0]
    for other in runs[1:]:
        same = np.array_equal(first.indices, other.indices) and np.array_equal(first.labels, other.labels)
        if not same or first.is_regression != other.is_regression:
            raise ConfigError(f"runs {first.run_id} and {other.run_id} were evaluated on different examples",
                              fix="pick runs of the same dataset, evaluation split and evaluation size")


# -- metrics over many resamples at once --------------------------------------------------------


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    sx, sy = np.sqrt((xc ** 2).sum(1)), np.sqrt((yc ** 2).sum(1))
    ok = (sx > 1e-12) & (sy > 1e-12)  # analysis.training.metrics returns 0 for a constant input
    return np.where(ok, (xc * yc).sum(1) / np.where(ok, sx * sy, 1.0), 0.0)


def _matthews_rows(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Multi-class MCC (Gorodkin's R_K, as scikit-learn) per row, 0 where it is undefined."""
    k = int(max(pred.max(), gold.max())) + 1
    s = float(pred.shape[1])
    c = (pred == gold).sum(1).astype(float)
    p = np.stack([(pred == j).sum(1) for j in range(k)], 1).astype(float)
    t = np.stack([(gold == j).sum(1) for j in range(k)], 1).astype(float)
    cov_pt = c * s - (p * t).sum(1)
    den = np.sqrt((s * s - (p * p).sum(1)) * (s * s - (t * t).sum(1)))
    return np.where(den > 0, cov_pt / np.where(den > 0, den, 1.0), 0.0)


def _f1_rows(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    tp = ((pred == 1) & (gold == 1)).sum(1).astype(float)
    wrong = ((pred == 1) != (gold == 1)).sum(1).astype(float)  # fp + fn
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + wrong, 1e-12), 0.0)


def _spearman_rows(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return _pearson_rows(rankdata(pred, axis=1), rankdata(gold, axis=1))


VECTORISED = {
    "accuracy": lambda pred, gold: (pred == gold).mean(1),
    "f1": _f1_rows, "matthews": _matthews_rows, "pearson": _pearson_rows, "spearman": _spearman_rows,
}


def metric_rows(name: str, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """The metric of each row of (resamples, n) predictions; registered metrics without a fast path loop."""
    if name in VECTORISED:
        return VECTORISED[name](pred, gold)
    fn = METRICS.get(name)
    return np.array([fn(p, g) for p, g in zip(pred, gold)])


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) example indices drawn with replacement, the same draws for every run (paired)."""
    if n < 2:
        raise DataError(f"{n} dev example(s) cannot be bootstrapped", fix="compare runs with a larger dev set")
    if n_resamples < 100:
        raise ConfigError(f"{n_resamples} bootstrap resamples are too few", fix="use at least 100 (e.g. 1000)")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def paired_bootstrap(pred_a: np.ndarray, pred_b: np.ndarray, gold: np.ndarray, metric: str,
                     n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Percentile bootstrap interval of metric(a) - metric(b), resampling the same examples for both runs."""
    idx = resample_indices(len(gold), n_resamples, seed)
    fn = METRICS.get(metric)
    stats_a = metric_rows(metric, pred_a[idx], gold[idx])
    stats_b = metric_rows(metric, pred_b[idx], gold[idx])
    diff = stats_a - stats_b
    tail = 100 * (1 - confidence) / 2
    point_a, point_b = fn(pred_a, gold), fn(pred_b, gold)
    return {"metric": metric, "value_a": point_a, "value_b": point_b, "diff": point_a - point_b,
            "ci_low": float(np.percentile(diff, tail)), "ci_high": float(np.percentile(diff, 100 - tail)),
            # the share of resamples on the other side of zero from the observed difference (two-sided)
            "p_bootstrap": float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean()))),
            "n_resamples": n_resamples, "seed": seed, "confidence": confidence, "examples": len(gold)}


def bootstrap_interval(pred: np.ndarray, gold: np.ndarray, metric: str, n_resamples: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of one run's metric (the same draws as `paired_bootstrap` for a seed)."""
    idx = resample_indices(len(gold), n_resamples, seed)
    values = metric_rows(metric, pred[idx], gold[idx])
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


# -- McNemar ------------------------------------------------------------------------------------


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """Exact (binomial) and mid-p McNemar tests on paired correct/incorrect outcomes, two-sided."""
    from scipy.stats import binom

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    exact = 1.0 if n == 0 else min(1.0, 2 * float(binom.cdf(k, n, 0.5)))
    mid = 1.0 if n == 0 else min(1.0, 2 * float(binom.cdf(k, n, 0.5) - 0.5 * binom.pmf(k, n, 0.5)))
    return {"only_a_correct": only_a, "only_b_correct": only_b, "both_correct": int((a & b).sum()),
            "both_wrong": int((~a & ~b).sum()), "p_exact": exact, "p_mid": mid}


# -- flipped examples and their text -------------------------------------------------------------


def dev_texts(store: RunStore, run_id: str) -> tuple[dict[int, str], tuple[str, ...] | None]:
    """The evaluation split a run used, reloaded from its data config: {example index: text}, label names."""
    from analysis.core.config import DataConfig
    from analysis.data.tasks import load_split

    record = store.record(run_id)
    raw = record.get("config", {}).get("data")
    if not raw:
        raise ConfigError(f"run {run_id} has no data config", fix="compare fine-tune or prune runs")
    cfg = DataConfig.from_dict(raw)
    split = record.get("summary", {}).get("eval_split") or cfg.eval_split or "validation"
    ds = load_split(cfg, split)
    joined = [" ||| ".join(parts) for parts in zip(*ds.texts)]
    names = ds.card.label_names or ds.card.labels
    return {int(i): t for i, t in zip(ds.indices, joined)}, names


def flipped_examples(a: Predictions, b: Predictions, texts: Mapping[int, str] | None = None,
                     label_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Examples where run A and run B predict different classes, with the gold label and which was right."""
    check_aligned([a, b])
    if a.is_regression:
        raise ConfigError("flipped predictions are defined for classification only",
                          fix="for a regression task, compare the metric intervals")
    pa, pb = a.predicted, b.predicted
    where = np.flatnonzero(pa != pb)

    def name(label: int) -> str:
        return str(label_names[label]) if label_names and 0 <= label < len(label_names) else str(label)

    rows = []
    for i in where:
        gold = int(a.labels[i])
        right = "A" if pa[i] == gold else "B" if pb[i] == gold else "neither"
        rows.append({"index": int(a.indices[i]), "text": (texts or {}).get(int(a.indices[i])), "gold": name(gold),
                     "pred A": name(int(pa[i])), "pred B": name(int(pb[i])), "correct": right})
    columns = ["index", "text", "gold", "pred A", "pred B", "correct"]
    return pd.DataFrame(rows, columns=columns)


# -- config diff ----------------------------------------------------------------------------------


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {'data.dataset': ..., 'train.lr': ...}; lists become strings so they compare."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return out


def config_diff(configs: Mapping[str, Mapping[str, Any]], show_all: bool = False) -> pd.DataFrame:
    """One row per config key whose value differs between the runs (every key with `show_all`)."""
    flat = {label: flatten(cfg) for label, cfg in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    rows = []
    for key in keys:
        values = [flat[label].get(key, "(absent)") for label in flat]
        if show_all or len({repr(v) for v in values}) > 1:
            rows.append({"key": key, **{label: "" if v is None else str(v) for label, v in zip(flat, values)}})
    return pd.DataFrame(rows, columns=["key", *flat])


# -- everything for a set of runs --------------------------------------------------------------------


@dataclass
class Comparison:
    """Per-run metrics with bootstrap intervals, paired differences for every pair, McNemar per pair."""

    runs: list[Predictions]
    metrics: pd.DataFrame  # run, metric, value, ci_low, ci_high
    pairs: pd.DataFrame  # a, b, metric, diff, ci_low, ci_high, p_bootstrap, mcnemar columns
    n_resamples: int
    seed: int


def compare_runs(store: RunStore, run_ids: Sequence[str], n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> Comparison:
    """Compare 2-4 runs on their shared dev examples (the first run is listed first in every pair)."""
    if not 2 <= len(run_ids) <= 4 or len(set(run_ids)) != len(run_ids):
        raise ConfigError(f"got {len(run_ids)} runs", fix="pick between 2 and 4 different runs")
    return compare_predictions([load_predictions(store, r) for r in run_ids], n_resamples, seed, confidence)


def compare_predictions(runs: Sequence[Predictions], n_resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> Comparison:
    """Metrics with bootstrap intervals, and paired bootstrap + McNemar for every pair, of aligned predictions."""
    runs = list(runs)
    check_aligned(runs)
    names = [m for m in runs[0].metrics if all(m in r.metrics for r in runs)] or list(runs[0].metrics)
    gold = runs[0].labels
    rows = []
    for run in runs:
        for metric in names:
            low, high = bootstrap_interval(run.predicted, gold, metric, n_resamples, seed, confidence)
            rows.append({"run": run.run_id, "metric": metric, "value": METRICS.get(metric)(run.predicted, gold),
                         "ci_low": low, "ci_high": high})
    pairs = [pair_row(a, b, metric, n_resamples, seed, confidence)
             for a, b in combinations(runs, 2) for metric in names]
    return Comparison(runs, pd.DataFrame(rows), pd.DataFrame(pairs), n_resamples, seed)


def pair_row(a: Predictions, b: Predictions, metric: str, n_resamples: int, seed: int,
             confidence: float) -> dict[str, Any]:
    """One row of the pairs table: the paired bootstrap of one metric, and McNemar for classification."""
    out = {"a": a.run_id, "b": b.run_id,
           **paired_bootstrap(a.predicted, b.predicted, a.labels, metric, n_resamples, seed, confidence)}
    if a.is_regression:
        out.update({"mcnemar_p_exact": math.nan, "mcnemar_p_mid": math.nan, "flipped": math.nan})
    else:
        test = mcnemar(a.predicted == a.labels, b.predicted == b.labels)
        out.update({"only_a_correct": test["only_a_correct"], "only_b_correct": test["only_b_correct"],
                    "mcnemar_p_exact": test["p_exact"], "mcnemar_p_mid": test["p_mid"],
                    "flipped": int((a.predicted != b.predicted).sum())})
    return out


def comparable_runs(store: RunStore, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Finished fine-tune and prune runs that stored dev predictions (index rows, newest first)."""
    wanted = set(run_ids) if run_ids is not None else None
    return [r for r in store.list(status="done") if r["kind"] in ("finetune", "prune")
            and (wanted is None or r["run_id"] in wanted)
            and (store.run_dir(r["run_id"]) / "artefacts" / "predictions.safetensors").is_file()]
