"""Comparing runs: paired bootstrap intervals, McNemar, flipped examples, config diff, and real stored runs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.reports.compare import (
    Predictions,
    check_aligned,
    compare_runs,
    config_diff,
    dev_texts,
    flipped_examples,
    load_predictions,
    mcnemar,
    metric_rows,
    paired_bootstrap,
)
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.training.metrics import METRICS


def synthetic_pair(rng, n, p_a, p_b):
    """Gold labels and two classifiers right with probability p_a and p_b, independently per example."""
    gold = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < p_a, gold, 1 - gold)
    b = np.where(rng.random(n) < p_b, gold, 1 - gold)
    return a, b, gold


def test_bootstrap_interval_covers_the_true_accuracy_difference():
    rng = np.random.default_rng(1)
    true_diff, covered, trials = 0.85 - 0.80, 0, 60
    for trial in range(trials):
        a, b, gold = synthetic_pair(rng, 800, 0.85, 0.80)
        out = paired_bootstrap(a, b, gold, "accuracy", n_resamples=500, seed=trial)
        assert out["ci_low"] <= out["diff"] <= out["ci_high"]
        covered += out["ci_low"] <= true_diff <= out["ci_high"]
    assert covered / trials >= 0.85  # nominal 95%; a broken (e.g. unpaired or too narrow) interval falls far below


def test_bootstrap_interval_covers_the_true_pearson_difference():
    rng = np.random.default_rng(2)

    def sample(n):
        gold = rng.normal(size=n)
        return gold + rng.normal(scale=0.5, size=n), gold + rng.normal(scale=0.8, size=n), gold

    a, b, gold = sample(400_000)  # the population difference, to three decimals
    true_diff = METRICS.get("pearson")(a, gold) - METRICS.get("pearson")(b, gold)
    hits = 0
    for t in range(40):
        out = paired_bootstrap(*sample(500), "pearson", n_resamples=400, seed=t)
        hits += out["ci_low"] <= true_diff <= out["ci_high"]
    assert hits / 40 >= 0.85


def test_bootstrap_is_seeded_and_identical_runs_differ_by_exactly_zero():
    rng = np.random.default_rng(3)
    a, b, gold = synthetic_pair(rng, 300, 0.9, 0.7)
    first = paired_bootstrap(a, b, gold, "matthews", n_resamples=300, seed=7)
    assert first == paired_bootstrap(a, b, gold, "matthews", n_resamples=300, seed=7)
    assert first["ci_low"] != paired_bootstrap(a, b, gold, "matthews", n_resamples=300, seed=8)["ci_low"]
    same = paired_bootstrap(a, a, gold, "f1", n_resamples=300, seed=0)
    assert same["diff"] == same["ci_low"] == same["ci_high"] == 0.0  # paired: the same draws for both runs
    with pytest.raises(ConfigError, match="too few"):
        paired_bootstrap(a, b, gold, "accuracy", n_resamples=10)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), classes=st.integers(2, 4), n=st.integers(5, 60))
def test_vectorised_metrics_match_the_registry(seed, classes, n):
    rng = np.random.default_rng(seed)
    pred, gold = rng.integers(0, classes, (3, n)), rng.integers(0, classes, (3, n))
    pred[0] = gold[0]
    for name in ("accuracy", "f1", "matthews"):
        expected = [METRICS.get(name)(p, g) for p, g in zip(pred, gold)]
        assert np.allclose(metric_rows(name, pred, gold), expected), name
    values, targets = rng.normal(size=(3, n)), rng.normal(size=(3, n))
    values[1] = 2.0  # a constant prediction: both define the correlation as 0
    values[2] = np.round(values[2])  # ties
    for name in ("pearson", "spearman"):
        expected = [METRICS.get(name)(p, g) for p, g in zip(values, targets)]
        assert np.allclose(metric_rows(name, values, targets), expected), name


def test_mcnemar_against_hand_computed_values():
    # 10 examples only A gets right, 2 only B: exact p = 2 * P(X <= 2 | n=12, 1/2) = 2 * (1 + 12 + 66) / 4096
    a = np.array([True] * 10 + [False] * 2 + [True] * 30 + [False] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 30 + [False] * 5)
    out = mcnemar(a, b)
    assert (out["only_a_correct"], out["only_b_correct"], out["both_correct"], out["both_wrong"]) == (10, 2, 30, 5)
    assert math.isclose(out["p_exact"], 158 / 4096, rel_tol=1e-12)
    assert math.isclose(out["p_mid"], 2 * (79 - 33) / 4096, rel_tol=1e-12)  # minus half the point mass P(X = 2)
    tied = mcnemar(np.array([True, False, True]), np.array([False, True, True]))
    assert tied["p_exact"] == 1.0 and math.isclose(tied["p_mid"], 1.0)
    assert mcnemar(a, a)["p_exact"] == 1.0  # no discordant pairs


def preds(run_id, outputs, labels, indices=None):
    outputs = np.asarray(outputs, float)
    return Predictions(run_id, np.asarray(indices if indices is not None else range(len(labels))), outputs,
                       np.asarray(labels), ("accuracy",))


def test_flipped_examples_with_text_and_label_names():
    onehot = np.eye(2)
    a = preds("runA", onehot[[0, 1, 1, 0]], [0, 1, 0, 1], indices=[3, 5, 8, 9])
    b = preds("runB", onehot[[0, 0, 0, 1]], [0, 1, 0, 1], indices=[3, 5, 8, 9])
    flips = flipped_examples(a, b, {5: "fine", 8: "dull", 9: "great"}, ("neg", "pos"))
    assert list(flips["index"]) == [5, 8, 9]
    assert list(flips["text"]) == ["fine", "dull", "great"]
    assert list(flips["gold"]) == ["pos", "neg", "pos"]
    assert list(flips["pred A"]) == ["pos", "pos", "neg"] and list(flips["pred B"]) == ["neg", "neg", "pos"]
    assert list(flips["correct"]) == ["A", "B", "B"]
    with pytest.raises(ConfigError, match="different examples"):
        check_aligned([a, preds("runC", onehot[[0, 1, 1, 0]], [0, 1, 0, 1], indices=[3, 5, 8, 10])])
    with pytest.raises(ConfigError, match="classification only"):
        flipped_examples(preds("r1", [0.1, 0.5], [0.2, 0.4]), preds("r2", [0.3, 0.5], [0.2, 0.4]))


def test_config_diff_lists_only_what_differs():
    one = {"data": {"dataset": "sst2", "train_size": 1000}, "train": {"lr": 1e-4, "epochs": 3}, "seed": 0,
           "options": {}, "sizes": [1, 2]}
    two = {"data": {"dataset": "sst2", "train_size": 2000}, "train": {"lr": 1e-4, "epochs": 3}, "seed": 1,
           "options": {"p": 0.3}, "sizes": [1, 2]}
    diff = config_diff({"A": one, "B": two})
    assert list(diff["key"]) == ["data.train_size", "options", "options.p", "seed"]
    rows = diff.set_index("key")
    assert rows.loc["data.train_size", "A"] == "1000" and rows.loc["data.train_size", "B"] == "2000"
    assert rows.loc["options.p", "A"] == "(absent)" and rows.loc["options.p", "B"] == "0.3"
    everything = config_diff({"A": one, "B": two}, show_all=True)
    assert {"data.dataset", "train.lr", "sizes"} <= set(everything["key"])
    assert config_diff({"A": one, "B": dict(one)}).empty


def test_compare_real_runs_matches_their_stored_predictions(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    ids = []
    for seed, lr, epochs in ((0, 3e-3, 8), (1, 1e-4, 1)):  # one run learns the tiny task, one does not
        cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                            "eval_file": str(evaluation), "epochs": epochs, "batch_size": 8, "lr": lr,
                                            "seed": seed})
        ids.append(jobs.execute("finetune", cfg, save_weights=False).record.run_id)
    store = RunStore()
    comp = compare_runs(store, ids, n_resamples=200, seed=0)
    for run_id in ids:
        row = comp.metrics.set_index("run").loc[run_id]
        assert math.isclose(row["value"], store.require(run_id).metrics["accuracy"], abs_tol=1e-9)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    a, b = (load_predictions(store, r) for r in ids)
    pair = comp.pairs.iloc[0]
    assert pair["flipped"] == int((a.predicted != b.predicted).sum()) > 0
    assert pair["diff"] == (a.predicted == a.labels).mean() - (b.predicted == b.labels).mean()
    assert pair["mcnemar_p_exact"] == mcnemar(a.predicted == a.labels, b.predicted == b.labels)["p_exact"]
    texts, names = dev_texts(store, ids[0])
    assert texts[0] == "a great film" and len(texts) == 12 and names == ("0", "1")
    flips = flipped_examples(a, b, texts, names)
    assert len(flips) == pair["flipped"] and all(isinstance(t, str) for t in flips["text"])
    with pytest.raises(ConfigError, match="between 2 and 4"):
        compare_runs(store, ids[:1])
