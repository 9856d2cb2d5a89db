"""`bench dashboard`: the store it fills holds exactly the runs asked for, with working links between copies,
and every page of app.py is found."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.bench.dashboard import app_pages, fill_store
from analysis.store.index import RunStore

ROOT = Path(__file__).resolve().parents[2]


def reference_lines() -> list[str]:
    return [line for line in (ROOT / "results" / "pruning-sweep-sst2" / "runs.jsonl").read_text().splitlines() if line]


def test_fill_store_copies_real_records_with_their_links(tmp_path):
    lines = reference_lines()
    store = RunStore(tmp_path / "runs")
    n = 2 * len(lines) + 5  # two whole copies and a partial third
    assert fill_store(store, lines, n) == n
    rows = store.list()
    assert len(rows) == len({r["run_id"] for r in rows}) == n
    studies = [r for r in rows if r["summary"].get("run_ids")]
    assert len(studies) == 2  # the partial copy takes single runs only: no study over copied runs
    for study in studies:
        members = study["summary"]["run_ids"]
        assert all(store.get(m) is not None and store.get(m).status == "done" for m in members)
        table = store.load_artifact_json(study["run_id"], "table")
        assert {r["run_id"] for r in table} == set(members)
    originals = {json.loads(line)["run_id"] for line in lines}
    copied = [r for r in rows if r["run_id"] not in originals]
    assert len(copied) == n - len(lines)
    for row in copied:
        if row["kind"] == "prune":
            teacher = store.record(row["run_id"]).get("teacher")
            assert teacher is None or store.get(teacher) is not None, row["run_id"]
            assert store.load_artifact_json(row["run_id"], "sparsity")["encoder_sparsity"] > 0
    assert len({r["created"] for r in rows}) == n


def test_every_page_of_the_app_is_found():
    pages = app_pages(ROOT / "app.py")
    assert {"Runs", "Launch", "Sparsity", "Accuracy", "Data scale", "Probes", "Child-Tuning", "Compare",
            "Export"} <= set(pages)
    assert all(path.is_file() and path.parent.name == "dashboard" for path in pages.values())
