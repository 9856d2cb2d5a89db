"""The reference studies in results/ import into an empty store, and every page renders them (AppTest)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.service.runs import RunStore, import_runs

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.stem for p in (ROOT / "dashboard").glob("*.py")
               if p.stem not in ("__init__", "common", "widgets"))


@pytest.fixture(scope="module")
def results_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results-store")
    added = import_runs(RunStore(root), ROOT / "results")["added"]
    assert added > 0
    return root


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_the_reference_results(results_store, monkeypatch, name):
    monkeypatch.setenv("PRUNESCOPE_STORE", str(results_store))
    at = AppTest.from_file(str(ROOT / "dashboard" / f"{name}.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_home_states_what_each_reference_study_found(results_store, monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_STORE", str(results_store))
    at = AppTest.from_file(str(ROOT / "dashboard" / "home.py"), default_timeout=180).run()
    text = " ".join(m.value for m in at.markdown)
    assert "sparsebert minus small-dense at equal non-zero encoder weights" in text
    assert "Child-Tuning vs vanilla on 5 task(s)" in text
    assert "training examples, against the pretrained transformer: lstm 7.1 points behind" in text
    assert len(at.get("plotly_chart")) == 3 and "python -m analysis demo" in text  # one per kind of study
