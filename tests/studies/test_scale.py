"""The data-scale study on tiny models and tiny data: grid, resume after a crash, statistics, curve fit."""

import math

import numpy as np
import pytest

from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError, DataError
from analysis.core.stats import describe, paired_difference
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.studies.curves import break_even, crossing, fit_curve, power_law
from analysis.studies.data_scale import ScaleConfig


def scale_config(tiny_models, files, **extra):
    train, evaluation = files
    base = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "lstm_hidden": 16})
    values = {"finetune": base, "sizes": (20, 30), "seeds": (0, 1), "transformer_max_epochs": 2.0,
              "lstm_max_epochs": 2.0, **extra}
    return ScaleConfig(**values)


def test_grid_sizes_seeds_and_budgets(tiny_models, sentiment_files):
    cfg = scale_config(tiny_models, sentiment_files)
    assert cfg.points(48) == [(20, (0, 1)), (30, (0, 1)), (48, (0,))]
    run = cfg.run_config("lstm", 20, 48, seed=1)
    assert run.model.model == "lstm" and run.model.lstm_embeddings == "random" and run.train.lr == cfg.lstm_lr
    assert run.train.holdout_fraction == 0.1 and run.data.train_size == 20 and run.seed == 1
    assert run.train.select_on == "metric-then-loss"  # a 10-example held-out part's accuracy ties often
    # the fast LSTM (bench lstm): lazy row-wise updates of the embedding table, [CLS]/[SEP] left out
    assert run.model.lstm_sparse_embeddings and not run.model.lstm_special_tokens and run.train.batch_size == 128
    assert cfg.run_config("lstm-pretrained", 48, 48, 0).data.train_size is None  # the whole split
    assert cfg.run_config("transformer", 20, 48, 0).train.epochs == 2.0  # clipped to the arm's maximum
    fractions = scale_config(tiny_models, sentiment_files, fractions=(0.5,), include_full=False)
    assert fractions.points(48) == [(24, (0, 1))]


def test_study_runs_and_resumes_after_a_crash(tiny_models, sentiment_files, monkeypatch):
    cfg = scale_config(tiny_models, sentiment_files, arms=("transformer", "lstm"), sizes=(20,), include_full=False)
    real = jobs.execute
    calls = {"n": 0}

    def crash_on_third(kind, config, *a, **k):
        if kind == "finetune":
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("simulated kill")
        return real(kind, config, *a, **k)

    monkeypatch.setattr("analysis.runs.executors.execute", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        jobs.execute("study-scale", cfg)
    store = RunStore()
    finished = {r["run_id"] for r in store.list(kind="finetune") if r["status"] == "done"}
    assert len(finished) == 2 and store.list(kind="study-scale")[0]["status"] == "interrupted"
    monkeypatch.setattr("analysis.runs.executors.execute", real)
    rec = jobs.execute("study-scale", cfg).record
    table = store.load_artifact_json(rec.run_id, "table")
    assert len(table) == 4 and finished <= {r["run_id"] for r in table}
    assert len(store.list(kind="finetune")) == 4  # the two finished points were not run again


def test_statistics_on_known_values():
    d = describe([1.0, 2.0, 3.0, 4.0])
    assert d["mean"] == 2.5 and math.isclose(d["std"], 1.2909944, rel_tol=1e-6)
    assert math.isclose(d["ci_high"] - d["mean"], 3.182446 * 1.2909944 / 2, rel_tol=1e-5)  # t(0.975, 3)
    p = paired_difference([2.0, 3.0, 5.0], [1.0, 1.0, 2.0])
    assert math.isclose(p["mean"], 2.0) and 0 < p["p_value"] < 0.2


def test_curve_fit_recovers_known_parameters_and_break_even():
    n = np.array([100, 300, 1000, 3000, 10000, 30000, 100000.0])
    truth_t, truth_l = (0.93, 1.2, 0.5), (0.90, 2.0, 0.45)
    ft, fl = fit_curve(n, power_law(n, *truth_t)), fit_curve(n, power_law(n, *truth_l))
    for fitted, truth in ((ft, truth_t), (fl, truth_l)):
        assert np.allclose([fitted[k] for k in "abc"], truth, rtol=1e-3)
    true_n = crossing(truth_t, truth_l, 0.04)
    be = break_even(ft, fl, largest_observed=30000, threshold=0.04)
    assert math.isclose(be["n"], true_n, rel_tol=0.02) and be["extrapolation"]
    never = break_even(ft, fit_curve(n, power_law(n, 0.80, 2.0, 0.45)), 30000)
    assert math.isnan(never["n"])  # a 3-point asymptotic gap never closes to 1 point
    assert not fit_curve([100, 1000], [0.5, 0.6])["ok"]
    still_rising = fit_curve(n[:4], 0.4 + 0.1 * np.log10(n[:4]))  # log-linear: an unbounded fit's asymptote is > 1
    assert still_rising["ok"] and still_rising["a"] <= 1.0


def test_bad_input(tiny_models, sentiment_files):
    with pytest.raises(DataError, match="sizes \\[5000\\] are larger than the training split \\(48 rows\\)"):
        jobs.execute("study-scale", scale_config(tiny_models, sentiment_files, sizes=(20, 5000)))
    with pytest.raises(ConfigError, match="the grid is empty"):
        scale_config(tiny_models, sentiment_files, sizes=(), include_full=False)
    with pytest.raises(ConfigError, match="the grid is empty"):
        scale_config(tiny_models, sentiment_files, seeds=())
    with pytest.raises(ConfigError, match="unknown data-scale arm 'gru'"):
        scale_config(tiny_models, sentiment_files, arms=("gru",))
    qnli = ScaleConfig(finetune=FinetuneConfig.from_flat({}, {"dataset": "qnli"}))
    with pytest.raises(DataError, match="'qnli' has no training split"):
        jobs.execute("study-scale", qnli)
    assert RunStore().list() == []
