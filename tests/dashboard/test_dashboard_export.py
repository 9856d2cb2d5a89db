"""The Export page and the export widget (Streamlit AppTest) against a store filled by a real tiny pruning sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.figures.style import parse_colour
from analysis.runs import experiment as jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def chromium():
    """The page renders files with the system Chromium: fail loudly (CI installs it) rather than skip."""
    from analysis.figures.render import RenderError, browser_path

    try:
        return browser_path()
    except RenderError as exc:
        pytest.fail(f"Chromium is required for the Export page tests: {exc.message}")


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / "export.py"), default_timeout=120)


@pytest.fixture
def sweep(tiny_models, sentiment_files) -> str:
    from analysis.methods.pruning import PruneConfig
    from analysis.studies.pruning_sweep import PruningSweepConfig

    train, evaluation = sentiment_files
    base = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                      "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    config = PruningSweepConfig(prune=base, methods=("sparsebert", "random"), sparsities=(0.5, 0.9), seeds=(0,))
    return jobs.execute("sweep-pruning", config, save_weights=False).record.run_id


def download_labels(at: AppTest) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


def test_export_page_on_an_empty_store():
    at = page().run()
    assert not at.exception
    assert "Nothing to export" in at.info[0].value


def test_export_page_previews_and_prepares_a_study_figure(sweep):
    at = page().run()
    assert not at.exception
    study_box, figure_box = at.selectbox
    assert study_box.value.endswith(f"({sweep})")
    assert any(o.startswith("metric-vs-sparsity: ") for o in figure_box.options)
    at = figure_box.select("metric-vs-sparsity").run()
    assert not at.exception and not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    lines = {t["name"] for t in spec["data"] if t.get("mode") == "lines+markers"}
    assert lines == {"sparsebert", "random"}
    assert spec["layout"]["width"] == pytest.approx(3.3 * 96)
    assert len(at.dataframe[0].value) == 4

    at = at.button(key="export-page-files-metric-vs-sparsity-prepare").click().run()
    assert not at.exception and not at.error
    labels = download_labels(at)
    for file_name in ("metric-vs-sparsity.pdf", "metric-vs-sparsity.svg", "metric-vs-sparsity.png",
                      "metric-vs-sparsity.provenance.json", "metric-vs-sparsity-table.csv",
                      "metric-vs-sparsity-table.tex", "metric-vs-sparsity-table.provenance.json",
                      "All as metric-vs-sparsity.zip"):
        assert file_name in labels

    at = at.toggle(key="export-page-metric-vs-sparsity-grey").set_value(True).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    for trace in spec["data"]:
        r, g, b, _ = parse_colour(trace["line"]["color"] if trace.get("line", {}).get("color") else "#000")
        assert r == g == b
    assert "metric-vs-sparsity.pdf" not in download_labels(at)  # options changed: prepare again

    at = at.button(key="export-bundle-button").click().run()
    assert not at.exception and not at.error
    assert f"study-{sweep}.zip" in download_labels(at)
    assert any("sparsity-heatmap" in m.value and "training-curves" in m.value for m in at.markdown)


def test_export_page_from_chosen_runs(sweep):
    at = page().run()
    at = at.radio[0].set_value("Chosen runs").run()
    assert not at.exception
    runs = at.multiselect[0]
    prune_labels = [o for o in runs.options if " s=" in o]  # the one run label: a prune run says its sparsity
    at = runs.set_value(prune_labels[:2]).run()
    at = at.selectbox[0].select("sparsity-heatmap").run()
    assert not at.exception and not at.error
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in spec["data"]] == ["heatmap", "heatmap"]
    assert not any(b.key == "export-bundle-button" for b in at.button)  # the zip is per study


def widget_script():
    import pandas as pd

    from analysis.figures import metric_vs_sparsity
    from dashboard.widgets import export_buttons

    rows = [{"method": m, "encoder_sparsity": s, "value": 0.8 - s / 4, "metric": "accuracy", "seed": 0}
            for m in ("sparsebert", "random") for s in (0.5, 0.9)]
    export_buttons(metric_vs_sparsity(rows), pd.DataFrame(rows), {"run_ids": [], "function": "metric_vs_sparsity"},
                   "demo")


def test_export_widget_under_any_figure():
    at = AppTest.from_function(widget_script, default_timeout=120).run()
    assert not at.exception
    assert download_labels(at) == []
    at = at.radio(key="export-demo-width").set_value("double").run()
    at = at.button(key="export-demo-prepare").click().run()
    assert not at.exception and not at.error
    assert {"demo.pdf", "demo.svg", "demo.png", "demo.provenance.json", "demo-table.csv", "demo-table.tex",
            "All as demo.zip"} <= set(download_labels(at))
