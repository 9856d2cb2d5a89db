"""Data-scale, probe, Child-Tuning and Compare figures on synthetic inputs shaped like the stored artefacts."""

import math

import numpy as np
import pandas as pd

from analysis import figures
from analysis.compare import mcnemar, paired_bootstrap
from analysis.studies.child_tuning_study import summarise as child_summarise
from analysis.studies.curves import power_law
from analysis.studies.data_scale import summarise as scale_summarise

TRUTH = {"transformer": (0.93, 1.2, 0.5), "lstm": (0.93, 2.0, 0.4), "lstm-pretrained": (0.90, 1.8, 0.42)}
SIZES = (100, 300, 1000, 3000, 10000, 30000)


def scale_summary():
    """A study's summary as `data_scale.summarise` stores it: 3 seeds per size, 1 seed at the full split."""
    rng = np.random.default_rng(0)
    rows = [{"arm": arm, "size": size, "seed": seed, "run_id": f"{arm}-{size}-{seed}", "metric": "accuracy",
             "value": float(power_law(size, *p) + rng.normal(0, 0.002))}
            for arm, p in TRUTH.items() for size in SIZES + (67349,) for seed in ((0, 1, 2) if size < 67349 else (0,))]
    return rows, scale_summarise(rows, tuple(TRUTH))


def by_name(fig):
    return {t.name: t for t in fig.data}


def test_scale_curves_bands_fits_and_extrapolation():
    rows, summary = scale_summary()
    fig = figures.scale_curves(summary, "accuracy")
    assert len(fig.data) == 3 * 4  # per arm: band, means, fit over the data, extrapolated fit
    traces = by_name(fig)
    assert list(traces["lstm"].x) == list(SIZES) + [67349]
    band = traces["lstm 95% interval"]
    assert 67349 not in band.x and band.fill == "toself"  # the one-seed point has no interval
    solid, dashed = traces["lstm fit"], traces["lstm fit, extrapolated"]
    assert solid.line.dash == "solid" and dashed.line.dash == "dash"
    assert math.isclose(solid.x[-1], 67349) and math.isclose(dashed.x[0], 67349) and dashed.x[-1] > 67349
    assert fig.layout.xaxis.type == "log" and "extrapolated" in fig.layout.title.text


def test_scale_gap_marks_an_extrapolated_break_even_and_a_missing_one():
    _, summary = scale_summary()
    be = summary["break_even"]
    assert math.isfinite(be["lstm"]["n"]) and be["lstm"]["extrapolation"]  # the curves meet beyond the data
    assert math.isnan(be["lstm-pretrained"]["n"])  # a = 0.90 never comes within a point of 0.93
    fig = figures.scale_gap(summary, "accuracy")
    assert len(fig.data) == 4 + 3  # gap, two fit pieces and the break-even marker; no marker without a crossing
    marker = by_name(fig)["lstm break-even (extrapolated)"]
    assert math.isclose(marker.x[0], be["lstm"]["n"]) and marker.y[0] == 0.01
    assert math.isclose(marker.x[0] + marker.error_x.array[0], be["lstm"]["ci_high"])
    assert math.isclose(marker.x[0] - marker.error_x.arrayminus[0], be["lstm"]["ci_low"])
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "lstm-pretrained: no break-even" in notes and "extrapolated" in notes
    gap = by_name(fig)["transformer − lstm"]
    assert np.allclose(gap.y, [g["gap"] for g in summary["gaps"] if g["arm"] == "lstm"])


def test_scale_tables():
    _, summary = scale_summary()
    table = figures.scale_table(summary)
    assert len(table) == 21 and table["gap_to_transformer"].isna().sum() == 7
    curves = figures.curve_table(summary).set_index("arm")
    assert np.isclose(curves.loc["transformer", "a"], 0.93, atol=0.01)
    assert curves.loc["lstm", "break_even"].startswith("extrapolated")


def probe_results():
    transfer = {"applicable": True, "mr": 0.7, "cr": 0.75, "subj": 0.85, "mpqa": 0.8, "mean_accuracy": 0.775,
                "sts_b_spearman": 0.6}
    mlm = {"applicable": False, "reason": "the checkpoint carries no MLM head"}
    return {
        "pre-trained": {"cka": {"applicable": True, "pretrained": [1.0] * 7, "teacher": None}, "transfer": transfer,
                        "fidelity": {"applicable": False, "reason": "no teacher"}, "mlm": mlm},
        "sparsebert s=0.9": {"cka": {"applicable": True, "pretrained": [0.9, 0.7, 0.5], "teacher": [0.99, 0.9, 0.8]},
                             "fidelity": {"applicable": True, "agreement": 0.93, "kl_teacher_to_model": 0.05},
                             "transfer": {**transfer, "mr": 0.6}, "mlm": mlm,
                             "layer-probe": {"applicable": True, "accuracy_per_layer": [0.6, 0.7, 0.8]}},
        "dense": {"cka": {"applicable": True, "pretrained": [1.0, 0.8, 0.6], "teacher": None},
                  "layer-probe": {"applicable": True, "accuracy_per_layer": [0.6, 0.75, 0.9]}},
    }


def test_probe_figures_and_table():
    results = probe_results()
    bars = figures.probe_bars(results)
    assert [t.name for t in bars.data] == list(results) and all(t.type == "bar" for t in bars.data)
    assert by_name(bars)["sparsebert s=0.9"].y[list(bars.data[1].x).index("transfer MR")] == 0.6
    cka = figures.cka_lines(results)
    assert len(cka.data) == 4  # three lines against the pre-trained model, one against a teacher
    assert [t.xaxis for t in cka.data].count("x2") == 1 and list(cka.data[2].y) == [0.99, 0.9, 0.8]
    assert len(figures.layer_probe_lines(results).data) == 2
    table = figures.probe_table(results).set_index("model")
    assert table.loc["sparsebert s=0.9", "CKA vs teacher (last layer)"] == 0.8
    assert table.loc["dense", "layer probe (best layer)"] == 0.9 and "masked-token accuracy" not in table
    assert len(figures.not_applicable(results)) == 3


def child_network(shift):
    rows = [{"layer": layer, "module": module, "child_share": share, "fisher_mean": 10.0 ** (-8 + layer + shift),
             "fisher_max": 1e-5, "params": params}
            for layer in (0, 1) for module, share, params in (("query", 0.1, 100), ("ffn_in", 0.5, 300))]
    return {"by_layer_module": rows, "child_share_per_layer": {"0": 0.4, "1": 0.4}}


def test_child_tuning_per_layer_figures():
    nets = {"rte seed=0": child_network(0), "rte seed=1": child_network(0.5)}
    fisher = figures.fisher_per_layer(nets)
    assert len(fisher.data) == 2 and np.isclose(fisher.data[0].y[1], 1e-7)  # parameter-weighted over modules
    share = figures.child_share_per_layer(nets, p=0.4)
    assert [t.type for t in share.data] == ["bar", "bar"] and share.layout.shapes[0].y0 == 0.4
    change = lambda scale: [{"layer": layer, "module": m, "relative_change": scale * (1 + layer)}  # noqa: E731
                            for layer in (0, 1) for m in ("query", "value")] + \
        [{"layer": None, "module": "embeddings", "relative_change": scale * 0.1}]
    fig = figures.weight_change_per_layer({"vanilla": [change(0.02), change(0.04)], "child-d p=0.3": [change(0.01)]})
    assert len(fig.data) == 3  # two methods, one ratio line (vanilla against itself is not drawn)
    assert list(fig.data[0].x) == ["embeddings", "L0", "L1"] and np.allclose(fig.data[0].y, [0.003, 0.03, 0.06])
    assert np.allclose(fig.data[2].y, 1 / 3)


def test_mask_overlap_heatmaps_across_seeds_and_tasks():
    overlap = {"across_seeds": [{"task": "rte", "p": 0.3, "seeds": [a, b], "jaccard": j}
                                for (a, b), j in (((0, 1), 0.5), ((0, 2), 0.4), ((1, 2), 0.6))],
               "across_tasks": [{"tasks": ["rte", "/data/my.csv"], "p": 0.3, "seed": 0, "jaccard": 0.2}]}
    fig = figures.mask_overlap_heatmap(overlap, "seeds")
    z = np.array(fig.data[0].z)
    assert len(fig.data) == 1 and z.shape == (3, 3) and np.allclose(np.diag(z), 1) and np.allclose(z, z.T)
    assert z[0, 2] == 0.4 and "0.18 at p=0.3" in fig.layout.title.text
    tasks = figures.mask_overlap_heatmap(overlap, "tasks")
    assert list(tasks.data[0].x) == ["my.csv", "rte"] and tasks.data[0].z[0][1] == 0.2


def test_study_table_and_paired_differences():
    rows = [{"task": task, "method": m, "p": p, "seed": s, "value": base + bump + 0.01 * s}
            for task, base in (("rte", 0.6), ("mrpc", 0.8)) for s in range(3)
            for m, p, bump in (("vanilla", None, 0.0), ("child-f", 0.3, 0.02), ("child-d", 0.3, -0.01))]
    cells = child_summarise(rows)
    table = figures.study_table(cells)
    assert len(table) == 6 and table["diff_vs_vanilla"].isna().sum() == 2
    row = table[(table["task"] == "rte") & (table["method"] == "child-f p=0.3")].iloc[0]
    assert np.isclose(row["diff_vs_vanilla"], 0.02) and row["mean ± std"] == "63.0 ± 1.0"
    fig = figures.study_differences(cells)
    assert len(fig.data) == 2 and sorted(len(t.x) for t in fig.data) == [2, 2]


def test_compare_figures():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    preds = {r: np.where(rng.random(200) < acc, gold, 1 - gold) for r, acc in (("r1", 0.9), ("r2", 0.8), ("r3", 0.7))}
    metrics = pd.DataFrame([{"run": r, "metric": m, "value": 0.5, "ci_low": 0.4, "ci_high": 0.6}
                            for r in preds for m in ("accuracy", "f1")])
    fig = figures.metrics_side_by_side(metrics, {"r1": "first"})
    assert len(fig.data) == 6 and fig.data[0].name == "first" and fig.data[3].xaxis == "x2"
    pairs = pd.DataFrame([{"a": a, "b": b, **paired_bootstrap(preds[a], preds[b], gold, "accuracy", 300),
                           "mcnemar_p_exact": mcnemar(preds[a] == gold, preds[b] == gold)["p_exact"]}
                          for a, b in (("r1", "r2"), ("r1", "r3"), ("r2", "r3"))])
    diff = figures.paired_differences(pairs)
    assert len(diff.data) == 1 and list(diff.data[0].y) == ["r1<br>− r2", "r1<br>− r3", "r2<br>− r3"]
    assert np.allclose(np.array(diff.data[0].x) - np.array(diff.data[0].error_x.arrayminus), pairs["ci_low"])
