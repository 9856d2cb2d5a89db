"""General, transferable knowledge: SentEval-style logistic regression on frozen mean-pooled sentence
embeddings (MR, CR, SUBJ, MPQA: train split -> dev split, regularisation chosen by 5-fold CV on train),
and zero-shot STS-B Spearman of the cosine similarity of the two sentences' embeddings."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from analysis.core.config import DataConfig
from analysis.data.tasks import load_split
from analysis.methods.probes.base import PROBES, Probe, ProbeTarget
from analysis.methods.probes.features import text_features

TASKS = ("mr", "cr", "subj", "mpqa")


def logistic_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                      seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=5, max_iter=2000,
                                                               random_state=seed))
    with warnings.catch_warnings():  # scikit-learn 1.9 announces a change to fitted attributes we never read
        warnings.filterwarnings("ignore", message=".*use_legacy_attributes.*", category=FutureWarning)
        clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean())


def sts_spearman(target: ProbeTarget) -> float:
    from scipy.stats import spearmanr

    ds = load_split(DataConfig(dataset="stsb"), "validation")
    a = text_features(target, "stsb-dev-a", ds.texts[0])[-1]
    b = text_features(target, "stsb-dev-b", ds.texts[1])[-1]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(spearmanr(cos, ds.labels).statistic)


@PROBES.register("transfer")
class Transfer(Probe):
    def run(self, target: ProbeTarget) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for task in TASKS:
            train = load_split(DataConfig(dataset=task), "train")
            dev = load_split(DataConfig(dataset=task), "validation")
            train_x = text_features(target, f"{task}-train", train.texts[0])[-1]
            dev_x = text_features(target, f"{task}-dev", dev.texts[0])[-1]
            out[task] = logistic_accuracy(train_x, train.labels, dev_x, dev.labels)
        out["sts_b_spearman"] = sts_spearman(target)
        out["mean_accuracy"] = float(np.mean([out[t] for t in TASKS]))
        return out
