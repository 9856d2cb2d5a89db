"""Every dashboard page renders against a store filled by real small runs (Streamlit AppTest)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from analysis.core.config import FinetuneConfig
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore

ROOT = Path(__file__).resolve().parents[2]


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / f"{name}.py"), default_timeout=60)


def test_runs_page_on_an_empty_store():
    at = page("runs").run()
    assert not at.exception
    assert "store is empty" in at.info[0].value


def test_runs_page_lists_real_runs_and_failures(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    done = jobs.execute("finetune", cfg, save_weights=False).record
    store = RunStore()
    store.claim("badc0ffee0000001", "finetune", {}, {"method": "vanilla", "dataset": "x"})
    store.fail("badc0ffee0000001", "RuntimeError: out of memory")
    at = page("runs").run()
    assert not at.exception
    df = at.dataframe[0].value
    assert set(df["run_id"]) == {done.run_id, "badc0ffee0000001"}
    assert df.set_index("run_id").loc[done.run_id, "value"] == done.metrics["accuracy"]
    assert any("out of memory" in block.value for block in at.code)


def test_sparsity_and_accuracy_pages_on_a_real_sweep(tiny_models, sentiment_files):
    from analysis.methods.pruning import PruneConfig
    from analysis.studies.pruning_sweep import PruningSweepConfig

    train, evaluation = sentiment_files
    base = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                      "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    sweep = PruningSweepConfig(prune=base, methods=("sparsebert", "random"), sparsities=(0.5, 0.9), seeds=(0,))
    jobs.execute("sweep-pruning", sweep, save_weights=False)

    at = page("accuracy").run()
    assert not at.exception
    traces = at.get("plotly_chart")
    assert len(traces) == 3  # vs sparsity, vs non-zero parameters, training curves (no latency measured yet)
    import json

    first = json.loads(traces[0].proto.spec)
    names = {t.get("name") for t in first["data"] if t.get("mode") == "lines+markers"}
    assert names == {"sparsebert", "random"}
    assert len(at.dataframe[0].value) == 4
    assert [s["type"] for s in first["layout"]["shapes"]] == ["line"]  # no floor run yet: the dense line alone
    assert any("No floor yet" in c.value and "embedding-bag" in c.value for c in at.caption)

    at = page("sparsity").run()
    assert not at.exception
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in heatmap["data"]] == ["heatmap", "heatmap"]
    assert all(t["zmin"] == 0 and t["zmax"] == 1 for t in heatmap["data"])


def test_accuracy_page_shades_the_knowledge_window_once_a_floor_run_exists(tiny_models, sentiment_files):
    import json

    from analysis.methods.pruning import PruneConfig

    train, evaluation = sentiment_files
    common = {"dataset": str(train), "eval_file": str(evaluation), "batch_size": 8}
    # a teacher that learns the tiny task, and a floor that cannot (frozen embeddings, one slow epoch)
    jobs.execute("prune", PruneConfig.from_flat({}, {**common, "model": str(tiny_models["bert"]), "method": "magnitude",
                                                     "sparsity": 0.5, "epochs": 15, "lr": 1e-3}), save_weights=False)
    floor = jobs.execute("finetune", FinetuneConfig.from_flat({}, {
        **common, "model": "embedding-bag", "tokenizer": str(tiny_models["bert"]), "epochs": 1, "lr": 1e-4,
        "bag_freeze_embeddings": True}), save_weights=False).record
    at = page("accuracy").run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sorted(s["type"] for s in spec["layout"]["shapes"]) == ["line", "line", "rect"]
    names = [t.get("name", "") for t in spec["data"]]
    assert any(n.startswith("knowledge window") for n in names) and any(n.startswith("floor (") for n in names)
    assert any(floor.run_id in c.value and "knowledge window" in c.value for c in at.caption)
