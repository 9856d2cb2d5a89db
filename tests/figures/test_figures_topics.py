"""Data-scale, probe, Child-Tuning and Compare figures on synthetic inputs shaped like the stored artefacts."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.figures.base import LINE_COLOURS, distinct_labels, log_ticks, si_label
from analysis.figures.pruning import WINDOW_FILL
from analysis.figures.style import to_greyscale
from analysis.reports.compare import mcnemar, paired_bootstrap
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
    assert len(fig.data) == 4 + 3 + 1  # gap, two fit pieces and the break-even marker; a legend note without one
    marker = by_name(fig)["lstm break-even (extrapolated)"]
    assert math.isclose(marker.x[0], be["lstm"]["n"]) and marker.y[0] == 0.01
    assert math.isclose(marker.x[0] + marker.error_x.array[0], be["lstm"]["ci_high"])
    assert math.isclose(marker.x[0] - marker.error_x.arrayminus[0], be["lstm"]["ci_low"])
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "extrapolated" in notes and "no break-even" not in notes  # on the legend, never over the axes
    assert any(t.name.startswith("lstm-pretrained: no break-even") and t.x == (None,) for t in fig.data)
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
    assert by_name(bars)["sparsebert s=0.9"].y[list(bars.data[1].x).index("transfer<br>MR")] == 0.6
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


# ----------------------------------------------------------------------------------------------
# print layout and axis fixes: log ticks, single x values, clipped fits, palette, CKA panels, legends


def test_log_ticks_are_1_2_5_or_decades_with_readable_labels():
    values, labels = log_ticks(8, 67349 * 30, marks=[67349])
    assert labels == ["10", "100", "1k", "10k", "67k", "1M"]  # 100k is within 0.2 decades of 67k: dropped
    assert log_ticks(0.8e6, 6e6)[1] == ["1M", "2M", "5M"]  # a short span: 1-2-5
    assert log_ticks(10, 1e9)[1] == ["10", "1k", "100k", "10M", "1G"]  # a long one: every other decade
    assert log_ticks(2.7e6, 4e6)[1] == ["3.3M"]  # a span without a 1-2-5 value still gets one tick inside
    assert [si_label(v) for v in (5, 300, 1500, 67349, 1_061_688)] == ["5", "300", "1.5k", "67k", "1.1M"]


def test_scale_axes_use_the_readable_ticks():
    _, summary = scale_summary()
    for fig in (figures.scale_curves(summary, "accuracy"), figures.scale_gap(summary, "accuracy")):
        axis = fig.layout.xaxis
        assert axis.type == "log" and "67k" in axis.ticktext and "1k" in axis.ticktext
        assert all(t[-1] in "0kMG" or t == "67k" for t in axis.ticktext)  # decades and the full split, no "2", "5"
        assert 10 ** axis.range[0] <= 100 / 1.5 + 1e-6 and 10 ** axis.range[1] >= 67349 * 30 - 1


def small_study():
    """Like a tiny real study: the transformer at chance, the LSTM climbing fast to 1.0 (its fit is bounded by 1;
    its interval band is not)."""
    values = {("transformer", 12): (0.5, 0.5), ("transformer", 24): (0.5, 0.5), ("transformer", 48): (0.5,),
              ("lstm", 12): (0.65, 0.75), ("lstm", 24): (0.75, 0.83), ("lstm", 48): (1.0,)}
    rows = [{"arm": arm, "size": size, "seed": seed, "run_id": f"{arm}{size}{seed}", "metric": "accuracy", "value": v}
            for (arm, size), vs in values.items() for seed, v in enumerate(vs)]
    return scale_summarise(rows, ("transformer", "lstm"))


def test_fitted_curves_and_bands_are_drawn_within_the_metric_range_but_not_refitted():
    summary = small_study()
    curve = summary["curves"]["lstm"]
    assert curve["ok"] and curve["a"] <= 1.0 and power_law(1e9, curve["a"], curve["b"], curve["c"]) <= 1.0
    fig = figures.scale_curves(summary, "accuracy")
    fits = [t for t in fig.data if "fit" in t.name]
    assert all(max(t.y) <= 1.0 for t in fits)
    assert all(min(t.y) >= 0.0 and max(t.y) <= 1.0 for t in fig.data if t.name.endswith("interval"))
    table = figures.curve_table(summary).set_index("arm")
    assert table.loc["lstm", "a"] == curve["a"]  # the fit numbers are untouched
    gap = figures.scale_gap(summary, "accuracy")
    assert min(min(t.y) for t in gap.data if "fit" in t.name) >= -1.0
    _, full = scale_summary()  # fits that stay below 1 get no note
    assert "range" not in figures.scale_curves(full, "accuracy").layout.title.text


def pruned_rows(sparsities=(0.5, 0.8, 0.9), methods=("sparsebert", "small-dense", "random")):
    return [{"run_id": f"{m}{s}", "method": m, "seed": 0, "sparsity": s, "encoder_sparsity": s,
             "encoder_nonzero_params": round(10_000_000 * (1 - s)), "metric": "accuracy", "value": 0.9 - s / 10}
            for m in methods for s in sparsities]


def test_a_single_x_value_gets_a_padded_axis_around_it():
    fig = figures.metric_vs_sparsity(pruned_rows(sparsities=(0.9,)))
    low, high = fig.layout.xaxis.range
    assert low < 0.9 < high and high - low < 0.5 and list(fig.layout.xaxis.tickvals) == [0.9]
    nonzero = figures.metric_vs_nonzero(pruned_rows(sparsities=(0.9,))).layout.xaxis
    assert nonzero.type == "log" and nonzero.range[0] < 6 < nonzero.range[1] and nonzero.ticktext == ("1M",)
    several = figures.metric_vs_sparsity(pruned_rows())
    assert several.layout.xaxis.range is None  # plotly's own range when there is more than one value
    curves = figures.training_curves({"a": [{"step": 10, "loss": 0.7}, {"step": 20, "loss": 0.5}]},
                                     {"a": [{"epoch": 1, "accuracy": 0.8}]}, "accuracy")
    assert list(curves.layout.xaxis2.range) == [0.5, 1.5] and list(curves.layout.xaxis2.tickvals) == [1]


def _reference_shapes(fig):
    """(kind, y0, y1, dash) of every shape, sorted: the reference lines and the knowledge window's band."""
    return sorted((s.type, round(s.y0, 6), round(s.y1, 6), s.line.dash) for s in fig.layout.shapes)


def test_the_knowledge_window_is_shaded_between_the_floor_and_the_dense_line():
    rows = pruned_rows()  # values 0.81 to 0.85
    fig = figures.metric_vs_sparsity(rows, dense=0.88, floor=0.70)
    assert _reference_shapes(fig) == [("line", 0.7, 0.7, "dot"), ("line", 0.88, 0.88, "dash"),
                                      ("rect", 0.7, 0.88, None)]
    entries = {t.name: t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("reference")}
    assert set(entries) == {"dense (0.880)", "floor (0.700)", "knowledge window"}
    assert not fig.layout.annotations  # named in the legend: no label on the plot, where curves run
    assert all(s.opacity == 1 for s in fig.layout.shapes)  # drawn as their legend entries, not faded by the template
    assert entries["dense (0.880)"].line.dash == "dash" and entries["floor (0.700)"].line.dash == "dot"
    assert entries["knowledge window"].marker.color == WINDOW_FILL
    assert all(list(t.x) == [None] for t in entries.values())  # legend entries only: they draw nothing
    low, high = fig.layout.yaxis.range
    assert all(low < v < high for v in [r["value"] for r in rows] + [0.70, 0.88])
    grey = {t.name: t for t in to_greyscale(fig).data}
    assert grey["floor (0.700)"].line.dash == "dot"  # the greyscale copy keeps the lines' styles
    assert grey["dense (0.880)"].line.dash == "dash"
    series = [t.line.dash for t in to_greyscale(fig).data if not isinstance(t.meta, dict) and t.showlegend is not False]
    assert series and not {"dash", "dot"} & set(series)  # no method curve looks like a reference line in print
    from analysis.figures.style import parse_colour

    band = next(s for s in to_greyscale(fig).layout.shapes if s.type == "rect")
    red, green, blue, alpha = parse_colour(band.fillcolor)
    assert red == green == blue and 0 < alpha < 1  # grey in print, still see-through


def test_without_a_floor_the_figure_keeps_only_the_dense_line():
    fig = figures.metric_vs_sparsity(pruned_rows(), dense=0.88)
    assert _reference_shapes(fig) == [("line", 0.88, 0.88, "dash")]
    assert [t.name for t in fig.data if isinstance(t.meta, dict)] == ["dense (0.880)"]
    assert fig.layout.yaxis.range is None  # plotly's own range, as before the floor existed
    above = figures.metric_vs_sparsity(pruned_rows(), dense=0.80, floor=0.83)  # no window to shade
    assert [s.type for s in above.layout.shapes] == ["line", "line"]
    assert not any("knowledge window" in (t.name or "") for t in above.data)
    alone = figures.metric_vs_sparsity(pruned_rows(), floor=0.70)  # no dense teacher found: the floor line only
    assert _reference_shapes(alone) == [("line", 0.7, 0.7, "dot")]


def test_the_floor_is_the_best_finished_embedding_bag_run_of_the_dataset():
    from analysis.reports.tables import floor_run

    def run(run_id, value, model="embedding-bag", dataset="sst2", kind="finetune", status="done", examples=1000):
        return {"run_id": run_id, "kind": kind, "status": status, "model": model, "dataset": dataset,
                "metrics": {"accuracy": value}, "summary": {"metric": "accuracy", "train_examples": examples}}

    rows = [run("low", 0.74), run("best", 0.77), run("other-task", 0.9, dataset="imdb"),
            run("failed", 0.95, status="failed"), run("lstm", 0.8, model="lstm"), run("dense", 0.86, model="default"),
            run("pruned", 0.8, kind="prune")]
    assert floor_run(rows, "sst2") == ("best", 0.77)
    assert floor_run(rows, "imdb") == ("other-task", 0.9)
    assert floor_run(rows, "cola") is None
    # a floor trained on another budget is not this study's floor, however good
    rows.append(run("more-data", 0.79, examples=2000))
    assert floor_run(rows, "sst2") == ("more-data", 0.79)
    assert floor_run(rows, "sst2", train_examples=1000) == ("best", 0.77)
    assert floor_run(rows, "sst2", train_examples=500) is None


def test_lines_never_use_the_okabe_ito_yellow_and_greyscale_tells_them_apart():
    yellow = "#F0E442"
    assert yellow not in LINE_COLOURS and set(LINE_COLOURS) < set(figures.OKABE_ITO)
    assert all(figures.method_colour(m) != yellow for m in figures.method_order())
    rows = pruned_rows(methods=figures.method_order())  # ten methods: colours repeat, dashes then differ
    fig = figures.metric_vs_sparsity(rows)
    styles = [(t.line.color, t.line.dash) for t in fig.data if t.mode == "lines+markers"]
    assert len(styles) == 10 and len(set(styles)) == 10 and yellow not in {c for c, _ in styles}
    results = probe_results()
    _, summary = scale_summary()
    for f in (figures.cka_lines(results), figures.layer_probe_lines(results), figures.probe_bars(results),
              figures.scale_curves(summary), figures.training_curves({str(i): [{"step": 1, "loss": 1.0}]
                                                                       for i in range(9)})):
        spec = json.dumps(f.to_plotly_json()["data"])
        assert yellow.lower() not in spec.lower()
    grey = to_greyscale(fig)
    lines = [t for t in grey.data if t.mode == "lines+markers"]
    assert len({(t.line.dash, t.marker.symbol) for t in lines}) == len(lines)


def test_cka_without_any_teacher_has_no_empty_panel():
    only_pretrained = {"dense": {"cka": {"applicable": True, "pretrained": [0.5, 0.45, 0.4], "teacher": None}}}
    fig = figures.cka_lines(only_pretrained)
    assert len(fig.data) == 1 and "xaxis2" not in fig.layout and "no CKA against a dense teacher" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations] == ["vs the pre-trained model"]
    both = figures.cka_lines(probe_results())
    assert "xaxis2" in both.layout and "no CKA" not in both.layout.title.text


def test_training_curves_have_a_loss_and_a_dev_panel():
    losses = {"sparsebert s=0.9 seed 0": [{"step": s, "loss": 8.0 / s} for s in (10, 20, 30)],
              "dense seed 0": [{"step": s, "loss": 0.7 / s} for s in (10, 20, 30)]}
    epochs = {"sparsebert s=0.9 seed 0": [{"epoch": e, "accuracy": 0.6 + e / 10, "step": 10 * e} for e in (1, 2, 3)],
              "dense seed 0": [{"epoch": e, "accuracy": 0.8 + e / 100, "step": 10 * e} for e in (1, 2, 3)]}
    fig = figures.training_curves(losses, epochs, "accuracy")
    assert [(t.name, t.xaxis, t.mode) for t in fig.data] == [
        ("sparsebert s=0.9", "x", "lines"), ("sparsebert s=0.9", "x2", "lines+markers"),
        ("dense", "x", "lines"), ("dense", "x2", "lines+markers")]  # the shared "seed 0" goes to the subtitle
    assert "all runs: seed 0" in fig.layout.title.text
    assert [t.showlegend for t in fig.data] == [True, False, True, False]
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "step"
    assert fig.layout.xaxis2.title.text == "epoch" and np.allclose(fig.data[1].y, [0.7, 0.8, 0.9])
    assert len(figures.training_curves({}, epochs, "accuracy").data) == 2  # no loss logged: one panel


def test_latency_vs_metric_draws_stored_measurements_and_names_the_rest():
    def measured(run_id, method, ms, value):
        return {"run_id": run_id, "method": method, "value": value, "label": run_id,
                "latency": {"latency_ms_per_batch": ms, "examples_per_second": 32000 / ms, "threads": 1,
                            "batch_size": 32, "execution": "dense"}}

    rows = [measured("a", "sparsebert", 120.0, 0.84), measured("b", "sparsebert", 90.0, 0.80),
            measured("c", "dense", 150.0, 0.86)]
    fig = figures.latency_vs_metric(rows, ["d", "e"], "accuracy")
    assert [t.name for t in fig.data] == ["dense", "sparsebert"]
    assert list(fig.data[1].x) == [90.0, 120.0] and list(fig.data[1].y) == [0.80, 0.84]  # sorted by latency
    assert "not measured: 2 run(s)" in fig.layout.title.text and "batch 32, 1 thread(s)" in fig.layout.title.text


def test_common_words_of_run_labels_are_said_once():
    short, common = distinct_labels(["magnitude sst2 s=0.9 seed=0 (94b7)", "magnitude sst2 s=0.8 seed=0 (d825)"])
    assert short == ["s=0.9 (94b7)", "s=0.8 (d825)"] and common == "magnitude sst2 seed=0"
    assert distinct_labels(["a x", "a x"]) == (["a x", "a x"], "")  # nothing would tell them apart


def _legend_and_plots(svg: str) -> tuple[tuple[float, float, float, float], list[tuple[float, float, float, float]]]:
    """The legend's box and each subplot's box (from the axis lines) in a rendered plotly SVG."""
    x, y = map(float, re.search(r'class="legend"[^>]*transform="translate\(([\d.]+),\s*([\d.]+)\)', svg).groups())
    w, h = map(float, re.search(r'class="legend".*?class="bg"[^>]*?width="([\d.]+)" height="([\d.]+)"', svg,
                                re.S).groups())
    xs = [tuple(map(float, m)) for m in re.findall(r'class="xlines-above crisp"[^>]*d="M([\d.]+),([\d.]+)H([\d.]+)"', svg)]
    ys = [tuple(map(float, m)) for m in re.findall(r'class="ylines-above crisp"[^>]*d="M([\d.]+),([\d.]+)V([\d.]+)"', svg)]
    plots = [(x0, min(y0 for _, y0, _ in ys), x1, yb) for (x0, yb, x1) in xs]
    return (x, y, x + w, y + h), plots


@pytest.mark.parametrize("width", ["single", "double"])
def test_exported_legends_never_cover_the_plot(width):
    from analysis.figures.export import ExportOptions, prepare_figure
    from analysis.figures.render import renderer

    _, summary = scale_summary()
    many = {f"{m} s=0.9 seed 0": [{"step": s, "loss": 1.0 / s} for s in (10, 20)] for m in figures.method_order()[:6]}
    options = ExportOptions(width=width, formats=("svg",))
    for fig in (figures.metric_vs_sparsity(pruned_rows(methods=figures.method_order()[1:7])),
                figures.scale_curves(summary), figures.cka_lines(probe_results()), figures.training_curves(many)):
        prepared = prepare_figure(fig, options)
        svg = renderer().render(prepared, "svg", prepared.layout.width, prepared.layout.height).decode()
        (lx0, ly0, lx1, ly1), plots = _legend_and_plots(svg)
        assert plots
        for px0, py0, px1, py1 in plots:
            assert lx1 <= px0 or lx0 >= px1 or ly1 <= py0 or ly0 >= py1, (width, fig.layout.title.text)
        assert ly1 <= prepared.layout.height and lx1 <= prepared.layout.width + 1
        # and it leaves the data most of the figure: (old single-column exports gave it a third of the width)
        assert sum(px1 - px0 for px0, _, px1, _ in plots) >= 0.6 * prepared.layout.width, fig.layout.title.text
        assert min(py1 - py0 for _, py0, _, py1 in plots) >= 0.35 * prepared.layout.height, fig.layout.title.text
        assert prepared.layout.legend.font.size < prepared.layout.font.size
