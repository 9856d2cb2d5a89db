"""The Data scale, Probes, Child-Tuning and Compare pages (Streamlit AppTest) against stores filled by real tiny
runs: each renders without exception and shows the expected runs, traces and tables."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from analysis.core.config import FinetuneConfig
from analysis.figures import build_figure
from analysis.reports.compare import load_predictions, mcnemar
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.store.labels import run_labels

ROOT = Path(__file__).resolve().parents[2]


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / f"{name}.py"), default_timeout=180)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def titled(specs: list[dict], words: str) -> dict:
    return next(s for s in specs if words in s["layout"]["title"]["text"])


def base_flags(tiny_models, files, **extra) -> dict:
    train, evaluation = files
    return {"model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation), **extra}


@pytest.mark.parametrize("name, command", [("scale", "python -m analysis scale"),
                                           ("probes", "python -m analysis probe"),
                                           ("child_tuning", "python -m analysis sweep child-tuning"),
                                           ("compare", "python -m analysis finetune")])
def test_pages_on_an_empty_store_say_which_command_fills_them(name, command):
    at = page(name).run()
    assert not at.exception and command in at.info[0].value and not at.get("plotly_chart")


def test_scale_page_shows_a_running_study_then_the_finished_one(tiny_models, sentiment_files, monkeypatch):
    from analysis.studies.data_scale import ScaleConfig

    base = FinetuneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, lstm_hidden=16))
    cfg = ScaleConfig(finetune=base, sizes=(20, 30), seeds=(0, 1), arms=("transformer", "lstm"),
                      transformer_max_epochs=2.0, lstm_max_epochs=2.0)  # 20 and 30 x 2 seeds, the whole 48 x 1 seed
    real, calls = jobs.execute, {"n": 0}

    def crash_on_fourth(kind, config, *a, **k):
        calls["n"] += kind == "finetune"
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real(kind, config, *a, **k)

    monkeypatch.setattr("analysis.runs.executors.execute", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        jobs.execute("study-scale", cfg)
    at = page("scale").run()
    assert not at.exception and "3 points so far" in at.warning[0].value
    means = {t["name"]: t["x"] for t in charts(at)[0]["data"] if t.get("mode") == "lines+markers"}
    assert means == {"transformer": [20], "lstm": [20]}  # (transformer, lstm) x seed 0, then transformer seed 1

    monkeypatch.setattr("analysis.runs.executors.execute", real)
    study = jobs.execute("study-scale", cfg).record
    at = page("scale").run()
    assert not at.exception and not at.warning
    specs = charts(at)
    assert len(specs) == 2
    summary = RunStore().load_artifact_json(study.run_id, "summary")
    fitted = sum(c["ok"] for c in summary["curves"].values())
    curves = titled(specs, "vs training size")["data"]
    assert len(curves) == 2 * 2 + 2 * fitted  # band and means per arm, two fit pieces per fitted curve
    assert {t["name"]: t["x"] for t in curves if t.get("mode") == "lines+markers"} == {
        "transformer": [20, 30, 48], "lstm": [20, 30, 48]}
    gap = titled(specs, "Gap to the transformer")["data"]
    assert [t["name"] for t in gap if t.get("mode") == "lines+markers"] == ["transformer − lstm"]
    assert [len(at.dataframe[i].value) for i in range(3)] == [2, 6, 10]  # curves, cells, runs
    assert set(at.dataframe[2].value["run_id"]) == set(study.summary["run_ids"])
    built = build_figure(RunStore(), "scale-curves", [study.run_id])
    assert len(built.figure.data) == len(curves) and built.run_ids[0] == study.run_id


def test_probes_page_compares_a_pruned_model_and_its_teacher(tiny_models, sentiment_files):
    from analysis.methods.pruning import PruneConfig
    from analysis.runs.probe import ProbeConfig

    cfg = PruneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, epochs=1, batch_size=16,
                                               method="sparsebert", sparsity=0.5))
    pruned = jobs.execute("prune", cfg).record
    teacher = pruned.summary["teacher"]
    probes = ("fidelity", "cka")
    runs = [jobs.execute("probe", ProbeConfig(target=t, probes=probes)).record.run_id for t in (pruned.run_id, teacher)]

    at = page("probes").run()
    assert not at.exception
    assert len(at.multiselect[0].value) == 2
    specs = charts(at)
    bars = titled(specs, "probes per model")["data"]
    assert len(bars) == 2 and any(f"({pruned.run_id[:8]})" in t["name"] for t in bars)
    cka = titled(specs, "CKA")["data"]
    assert len(cka) == 3  # both models against the pre-trained one, only the pruned one against its teacher
    table = at.dataframe[0].value
    assert len(table) == 2 and table["teacher agreement"].notna().sum() == 1
    reasons = at.dataframe[1].value
    assert list(reasons["probe"]) == ["fidelity"] and "teacher" in reasons["reason"].iloc[0]
    assert len(build_figure(RunStore(), "probe-cka", runs).figure.data) == 3


def test_child_tuning_page_on_a_real_tiny_study(tiny_models, sentiment_files):
    from analysis.studies.child_tuning_study import ChildTuningStudyConfig

    train, _ = sentiment_files
    base = FinetuneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, epochs=1, batch_size=8))
    cfg = ChildTuningStudyConfig(finetune=base, tasks=(str(train),), seeds=(0, 1), transfer_from=str(train),
                                 transfer_to=("mr",), transfer_eval_size=40)
    study = jobs.execute("study-child-tuning", cfg).record

    at = page("child_tuning").run()
    assert not at.exception and not at.warning
    table = at.dataframe[0].value
    assert sorted(table["method"]) == ["child-d p=0.3", "child-f p=0.3", "vanilla"]
    assert table["diff_vs_vanilla"].notna().sum() == 2
    transfer = at.dataframe[1].value
    assert len(transfer) == 3 and set(transfer["target"]) == {"mr"} and (transfer["seeds"] == 2).all()
    specs = charts(at)
    assert len(titled(specs, "Paired difference")["data"]) == 2
    overlap = titled(specs, "mask overlap across seeds")["data"]
    assert len(overlap) == 1 and np.array(overlap[0]["z"]).shape == (2, 2)
    fisher = titled(specs, "Fisher")["data"]
    assert sorted(t["name"].split()[-1] for t in fisher) == ["seed=0", "seed=1"]
    assert len(titled(specs, "share of each layer")["data"]) == 2
    change = titled(specs, "Weight change")["data"]
    assert len(change) == 5  # three methods, two ratios to vanilla

    at.radio[0].set_value("single runs").run()
    assert not at.exception
    assert len(titled(charts(at), "Weight change")["data"]) == 5
    store = RunStore()
    expected = (("child-fisher", 2), ("child-share", 2), ("child-weight-change", 5), ("child-mask-overlap", 1))
    for name, traces in expected:
        assert len(build_figure(store, name, [study.run_id]).figure.data) == traces, name


def test_compare_page_on_real_runs(tiny_models, sentiment_files, tmp_path):
    ids = []
    for seed, lr, epochs in ((0, 3e-3, 8), (1, 1e-4, 1), (2, 3e-3, 4)):  # one learns, one does not, one between
        cfg = FinetuneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, epochs=epochs, lr=lr, seed=seed,
                                                      batch_size=8))
        ids.append(jobs.execute("finetune", cfg, save_weights=False).record.run_id)
    other = tmp_path / "other.csv"
    other.write_text(sentiment_files[0].read_text(encoding="utf-8"), encoding="utf-8")
    jobs.execute("finetune", FinetuneConfig.from_flat({}, {**base_flags(tiny_models, sentiment_files, epochs=1),
                                                           "dataset": str(other)}), save_weights=False)
    store = RunStore()

    at = page("compare").run()
    assert not at.exception
    assert len(at.selectbox[0].options) == 2 and at.selectbox[0].value == str(sentiment_files[0])
    labels = {label: rid for rid, label in run_labels([r for r in store.list() if r["run_id"] in ids]).items()}
    assert set(at.multiselect[0].options) == set(labels) and len(at.multiselect[0].value) == 2
    picked = [labels[v] for v in at.multiselect[0].value]
    bars, diffs = charts(at)
    assert len(bars["data"]) == 2 and len(diffs["data"]) == 1 and len(diffs["data"][0]["y"]) == 1
    metrics, pairs, flips, config = (at.dataframe[i].value for i in range(4))
    assert len(metrics) == 2 and len(pairs) == 1
    a, b = (load_predictions(store, r) for r in picked)
    expected = mcnemar(a.predicted == a.labels, b.predicted == b.labels)
    assert pairs["mcnemar_p_exact"].iloc[0] == expected["p_exact"]
    assert len(flips) == int((a.predicted != b.predicted).sum()) == pairs["flipped"].iloc[0]
    assert flips["text"].notna().all()
    assert {"seed", "train.lr"} <= set(config["key"])

    at.multiselect[0].set_value(list(labels)).run()
    assert not at.exception
    bars, diffs = charts(at)
    assert len(bars["data"]) == 3 and len(diffs["data"][0]["y"]) == 3 and len(at.dataframe[1].value) == 3
    assert len(build_figure(store, "compare-differences", ids).table) == 3


def test_accuracy_page_shows_training_curves_and_measured_latency(tiny_models, sentiment_files, capsys):
    from analysis.cli.base import main
    from analysis.methods.pruning import PruneConfig
    from analysis.studies.pruning_sweep import PruningSweepConfig

    base = PruneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, epochs=2, batch_size=8))
    sweep = PruningSweepConfig(prune=base, methods=("sparsebert", "small-dense"), sparsities=(0.5, 0.9), seeds=(0,))
    study = jobs.execute("sweep-pruning", sweep).record  # weights kept: latency is measured on them
    store = RunStore()
    runs = {(r["method"], r["summary"]["requested_sparsity"]): r["run_id"] for r in store.list(kind="prune")}
    teacher = store.require(runs[("sparsebert", 0.9)]).summary["teacher"]

    at = page("accuracy").run()
    assert not at.exception and len(charts(at)) == 3  # no latency measured yet: no latency figure, a message
    assert "python -m analysis latency" in at.info[0].value and runs[("sparsebert", 0.5)] in at.info[0].value
    curves = titled(charts(at), "Training curves")["data"]
    assert at.selectbox[1].value == 0.9
    # sparsebert and small-dense at 0.9 and their dense (vanilla) teacher: a loss line and a dev line each
    assert len(curves) == 6 and {t["name"] for t in curves} == {"sparsebert s=0.9", "small-dense s=0.9", "vanilla"}
    assert sorted(t["xaxis"] for t in curves) == ["x", "x", "x", "x2", "x2", "x2"]
    assert all(t["y"] for t in curves)

    measured = [runs[("sparsebert", 0.9)], runs[("small-dense", 0.9)], teacher]
    code = main(["latency", ",".join(measured), "--threads", "1", "--repeats", "1", "--batch-size", "4", "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and set(result["measured"]) == set(measured) and not result["failed"]
    for run_id in measured:
        stored = store.load_artifact_json(run_id, "latency")
        assert stored["threads"] == 1 and stored["batch_size"] == 4 and stored["kernel"] == "numba"
        assert stored["torch"] and stored["latency_ms_per_batch"] > 0 and stored["batches"] == 3  # 12 dev texts
    execution = {r: store.load_artifact_json(r, "latency")["execution"] for r in measured}
    assert execution == {runs[("sparsebert", 0.9)]: "sparse-numba", runs[("small-dense", 0.9)]: "dense (compacted)",
                         teacher: "dense"}
    assert store.load_artifact_json(runs[("sparsebert", 0.9)], "latency")["sparse_layers"] > 0

    at = page("accuracy").run()
    assert not at.exception and len(charts(at)) == 4
    latency = titled(charts(at), "measured CPU latency")
    assert sorted(t["name"] for t in latency["data"]) == ["dense", "small-dense", "sparsebert"]
    assert "not measured: 2 run(s)" in latency["layout"]["title"]["text"]
    note = " ".join(c.value for c in at.caption)
    assert runs[("sparsebert", 0.5)] in note and runs[("small-dense", 0.5)] in note and "latency.json" in note
    assert set(at.dataframe[1].value["run_id"]) == set(measured)
    built = build_figure(store, "latency-vs-metric", [study.run_id, teacher])
    assert len(built.figure.data) == 3 and sorted(built.arguments["not_measured"]) == sorted(
        [runs[("sparsebert", 0.5)], runs[("small-dense", 0.5)]])

    at.selectbox[1].set_value(0.5).run()
    curves = titled(charts(at), "Training curves")["data"]
    assert not at.exception and {t["name"] for t in curves} == {"sparsebert s=0.5", "small-dense s=0.5", "vanilla"}
    assert len(build_figure(store, "training-curves", [study.run_id]).figure.data) == 8  # four runs x two panels


def test_latency_needs_stored_weights(tiny_models, sentiment_files, capsys):
    from analysis.cli.base import main

    cfg = FinetuneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, epochs=1, batch_size=16))
    run_id = jobs.execute("finetune", cfg, save_weights=False).record.run_id
    assert main(["latency", run_id, "--json"]) == 2
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "no weights" in error["error"] and "latency.json" not in " ".join(RunStore().artefacts(run_id))
    assert main(["latency", run_id, "--kernel", "cuda", "--json"]) == 2
    assert "unknown kernel" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]


def test_compare_page_evaluates_the_runs_on_a_file(tiny_models, sentiment_files, tmp_path, monkeypatch):
    train, evaluation = sentiment_files
    for seed in (0, 1):
        jobs.execute("finetune", FinetuneConfig.from_flat({}, base_flags(tiny_models, sentiment_files, seed=seed,
                                                                         epochs=1)))
    held = tmp_path / "held.csv"
    held.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in [("great", 1), ("awful", 0)] * 4))
    monkeypatch.setenv("PRUNESCOPE_ALLOWED_PATHS", str(tmp_path))
    at = page("compare").run()
    at.radio[-1].set_value("A file")
    at.text_input[0].set_value(str(held))
    at = at.button[-1].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert "McNemar p" in table.columns and len(table) == 1
    at.text_input[0].set_value("/etc/passwd")
    at = at.button[-1].click().run()
    assert at.error and "evaluation file" in at.error[0].value
