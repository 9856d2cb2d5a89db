"""The Heads page (Streamlit AppTest) against a store holding a real tiny dense run, a head-pruned run made
from it, and the head importance of both."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.methods.pruning import PruneConfig
from analysis.runs import experiment as jobs
from analysis.runs.heads import HeadsConfig
from analysis.store.index import RunStore

ROOT = Path(__file__).resolve().parents[2]


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / "heads.py"), default_timeout=120)


def spec(chart) -> dict:
    return json.loads(chart.proto.spec)


@pytest.fixture
def pruned_store(tiny_models, sentiment_files):
    train, evaluation = sentiment_files
    config = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1, "batch_size": 16,
                                        "method": "heads", "sparsity": 0.5})
    pruned = jobs.execute("prune", config).record
    store = RunStore()
    dense = pruned.summary["teacher"]
    for target in (dense, pruned.run_id):
        jobs.execute("heads", HeadsConfig(target=target, max_examples=8, ig_examples=4))
    kept = store.load_artifact_json(pruned.run_id, "structure")["kept_heads"]
    return dense, pruned.run_id, kept


def test_heads_page_dense_vs_pruned(pruned_store):
    dense, pruned, kept = pruned_store
    at = page().run()
    assert not at.exception
    model, other = at.selectbox(key="heads:model"), at.selectbox(key="heads:other")
    assert pruned[:8] in model.value and "default (pre-trained)" in model.options[0]
    assert len(model.options) == 3  # the pre-trained model, the dense teacher, the pruned run
    assert dense[:8] in other.value  # side by side with its dense teacher by default
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    importance = spec(charts[0])
    heatmaps = [t for t in importance["data"] if t["type"] == "heatmap"]
    crosses = [t for t in importance["data"] if t["type"] == "scatter"]
    assert len(heatmaps) == 2 and len(crosses) == 1
    removed = 8 - sum(len(v) for v in kept.values())
    assert len(crosses[0]["x"]) == removed == 4
    attention, strips = spec(charts[1]), spec(charts[2])
    assert [t["type"] for t in strips["data"]] == ["heatmap", "heatmap"]
    assert len(at.metric) == 2 and not at.warning

    at.radio(key="heads:score").set_value(at.radio(key="heads:score").options[1]).run()
    assert not at.exception and len(at.get("plotly_chart")) == 3

    first_removed = min(h for h in range(4) if h not in kept["0"])
    at.selectbox(key="heads:other").set_value("(none)").run()
    at.selectbox(key="heads:layer").set_value(0).run()
    at.selectbox(key="heads:head").set_value(first_removed).run()
    assert not at.exception
    assert any("was removed from this model" in block.value for block in at.info)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the importance heatmap and the attribution bars (no map for a removed head)
    assert [t["type"] for t in spec(charts[1])["data"]] == ["bar"]
    assert len(attention["data"]) == 2  # both models had this head map before the switch


def test_heads_page_offers_to_compute_missing_importance_and_warns_on_long_text(tiny_models, sentiment_files):
    from analysis.core.config import FinetuneConfig

    train, evaluation = sentiment_files
    dense = jobs.execute("finetune", FinetuneConfig.from_flat({}, {
        "model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation), "epochs": 1,
        "batch_size": 16})).record
    at = page().run()
    assert not at.exception
    assert dense.run_id[:8] in at.selectbox(key="heads:model").value
    assert any("No head importance stored" in block.value and dense.run_id in block.value for block in at.info)
    assert at.button(key=f"heads:compute:{dense.run_id}")
    at.selectbox(key="heads:other").set_value("(none)").run()
    at.text_area(key="heads:text").set_value("so good " * 400).run()
    assert not at.exception
    assert any("tokens were cut" in block.value for block in at.warning)
    assert len(at.get("plotly_chart")) == 2  # attention map + attribution bars
