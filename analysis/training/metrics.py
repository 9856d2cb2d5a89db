"""Task metrics by name (accuracy, F1, Matthews, Pearson, Spearman), computed from predictions."""

from __future__ import annotations

from typing import Callable

import numpy as np

from analysis.core.registry import Registry

METRICS: Registry[Callable[[np.ndarray, np.ndarray], float]] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean())


@METRICS.register("f1")
def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """Binary F1 of the positive class (label id 1), as GLUE reports for MRPC."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    fp = float(((pred == 1) & (gold != 1)).sum())
    fn = float(((pred != 1) & (gold == 1)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


@METRICS.register("matthews")
def matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, pred))


@METRICS.register("pearson")
def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    if np.std(pred) == 0 or np.std(gold) == 0:
        return 0.0
    return float(np.corrcoef(pred, gold)[0, 1])


@METRICS.register("spearman")
def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.std(pred) == 0 or np.std(gold) == 0:
        return 0.0
    return float(spearmanr(pred, gold).statistic)


def compute(names: tuple[str, ...], outputs: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Metrics from raw model outputs: logits (classification) or values (regression)."""
    pred = outputs.reshape(-1) if outputs.ndim == 1 or outputs.shape[-1] == 1 else outputs.argmax(-1)
    return {name: METRICS.get(name)(pred, gold) for name in names}
