"""`python -m analysis bench dashboard --json`: every dashboard page's render time on a store of 500 runs.

The store is filled with real records: the reference pruning sweep under results/ and a few real tiny runs
made here (fine-tunes, Child-Tuning, a probe, head importance, a data-scale study), each copied under new run
ids (the references between them rewritten per copy) until the store holds `--runs` runs. Every page of
app.py is then rendered with Streamlit's AppTest in one process: the first render (cold caches) and the
median of `--repeats` reruns after it. Streamlit is imported only here, when the bench runs.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from analysis.bench.core import BENCHES
from analysis.core.settings import PROJECT_ROOT, using_store
from analysis.store.bundles import bundle_files, export_entry, import_entry
from analysis.store.index import RunStore

TARGET_SECONDS = 1.0
RUN_ID = re.compile(r"\b[0-9a-f]{16}\b")
POSITIVE = ["a great film", "wonderful and moving", "i loved it", "brilliant acting", "superb story", "so good"]
NEGATIVE = ["a terrible film", "boring and dull", "i hated it", "awful acting", "weak story", "so bad"]


def app_pages(app: Path = PROJECT_ROOT / "app.py") -> dict[str, Path]:
    """Title -> script of every st.Page in app.py (read from its source, so a new page is timed too)."""
    pages = {}
    for node in ast.walk(ast.parse(app.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page" and node.args:
            title = next((k.value.value for k in node.keywords if k.arg == "title"), None)
            path = node.args[0].value
            pages[title or Path(path).stem] = app.parent / path
    return pages


def tiny_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """A tiny random BERT (2 layers, 4 heads, hidden 32) with the embedded model's tokenizer, and a CSV task."""
    import torch
    from transformers import AutoModel, BertConfig

    from analysis.models.loading import default_model_path

    model = folder / "tiny-bert"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=0)
    AutoModel.from_config(config).save_pretrained(model, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (default_model_path() / name).exists():
            shutil.copy(default_model_path() / name, model / name)
    rows = [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE]
    train, evaluation = folder / "train.csv", folder / "dev.csv"
    train.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows * 4), encoding="utf-8")
    evaluation.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    return model, train, evaluation


def tiny_runs(store: RunStore, folder: Path) -> list[str]:
    """Real tiny runs of the kinds the reference results lack; returns the ids of every run made."""
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs
    from analysis.runs.heads import HeadsConfig
    from analysis.runs.probe import ProbeConfig
    from analysis.studies.data_scale import ScaleConfig

    model, train, evaluation = tiny_inputs(folder)
    base = {"model": str(model), "dataset": str(train), "eval_file": str(evaluation), "epochs": 1, "batch_size": 16}
    made = {}
    with using_store(store.root):
        for seed in (0, 1):
            for method, options in (("vanilla", {}), ("child-d", {"p": 0.3}), ("child-f", {"p": 0.3})):
                cfg = FinetuneConfig.from_flat({}, {**base, "seed": seed, "method": method, "options": options})
                made[(method, seed)] = jobs.execute("finetune", cfg, store).record.run_id
        target = made[("vanilla", 0)]
        jobs.execute("probe", ProbeConfig(target=target, probes=("fidelity", "cka", "layer-probe")), store)
        jobs.execute("heads", HeadsConfig(target=target, ig_examples=8), store)
        scale = ScaleConfig(finetune=FinetuneConfig.from_flat({}, base), sizes=(12, 24), seeds=(0, 1),
                            arms=("transformer", "lstm"), transformer_budget=200, lstm_budget=400,
                            transformer_max_epochs=3.0, lstm_max_epochs=3.0)
        jobs.execute("study-scale", scale, store)
    return [r["run_id"] for r in store.list(status="done")]


def templates(store: RunStore, results: Path) -> list[str]:
    """Every real record to copy, as one JSON line each: the reference results plus the tiny runs in `store`."""
    lines = [line for file in bundle_files(results) for line in file.read_text().splitlines() if line]
    lines += [json.dumps(export_entry(store, r["run_id"])) for r in store.list(status="done")]
    unique: dict[str, str] = {}  # a run shared by two exported studies is one run
    for line in lines:
        unique.setdefault(json.loads(line)["run_id"], line)
    return list(unique.values())


def _new_id(old: str, copy: int) -> str:
    """Copy 0 keeps the real ids; later copies get new ones, derived from the old id and the copy number."""
    return old if copy == 0 else hashlib.sha256(f"{old}:{copy}".encode()).hexdigest()[:16]


def fill_store(target: RunStore, lines: list[str], n_runs: int) -> int:
    """Import copies of the template records under new ids until the store holds `n_runs` runs.

    Copy 0 keeps the real ids. Whole copies keep their links (a study to its runs, a prune run to its teacher)
    by rewriting every known run id; the last, partial copy takes single runs (no studies), each renamed alone,
    so what they point at is copy 0's run."""
    known = {json.loads(line)["run_id"] for line in lines}
    singles = [line for line in lines if not json.loads(line)["record"].get("summary", {}).get("run_ids")]
    added, copy, start = 0, 0, time.time()
    while added < n_runs:
        whole = added + len(lines) <= n_runs
        if not whole and not singles:
            break
        for line in lines if whole else singles[: n_runs - added]:
            rename = known if whole else {json.loads(line)["run_id"]}
            entry = json.loads(RUN_ID.sub(lambda m: _new_id(m.group(0), copy) if m.group(0) in rename
                                          else m.group(0), line))
            entry["row"]["created"] = start - 60 * added  # distinct, newest first in the order imported
            import_entry(target, entry)
            added += 1
        copy += 1
    return added


def time_pages(pages: dict[str, Path], repeats: int, timeout: float = 300.0) -> dict[str, dict[str, Any]]:
    """Render each page with AppTest: a first run (cold caches), `repeats` reruns of that session (the median is
    the page's time) and a fresh session in the warm process (a newcomer opening the page)."""
    import logging

    from streamlit.testing.v1 import AppTest

    # AppTest builds pages outside a server: Streamlit warns for each that it is "missing ScriptRunContext"
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: "missing ScriptRunContext" not in record.getMessage())
    out = {}
    for title, script in pages.items():
        at = AppTest.from_file(str(script), default_timeout=timeout)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        errors = [e.value for e in at.exception] + [e.value for e in at.error]
        start = time.perf_counter()
        AppTest.from_file(str(script), default_timeout=timeout).run()
        fresh = time.perf_counter() - start
        out[title] = {"seconds": round(statistics.median(times[1:]), 4), "first_seconds": round(times[0], 4),
                      "fresh_session_seconds": round(fresh, 4), "reruns": [round(t, 4) for t in times[1:]],
                      "charts": len(at.get("plotly_chart")), "tables": len(at.dataframe), "errors": errors}
    return out


@BENCHES.register("dashboard")
def bench_dashboard(args: argparse.Namespace) -> dict[str, Any]:
    """Every page's render time (AppTest) on a temporary store of `--runs` copies of real run records."""
    import os

    n_runs, repeats = getattr(args, "runs", 500), max(1, args.repeats)
    with tempfile.TemporaryDirectory(prefix="prunescope-bench-") as tmp:
        seed_store, store = RunStore(Path(tmp) / "seed"), RunStore(Path(tmp) / "runs")
        start = time.perf_counter()
        tiny_runs(seed_store, Path(tmp))
        made = time.perf_counter() - start
        lines = templates(seed_store, PROJECT_ROOT / "results")
        start = time.perf_counter()
        added = fill_store(store, lines, n_runs)
        filled = time.perf_counter() - start
        previous = os.environ.get("PRUNESCOPE_STORE")
        os.environ["PRUNESCOPE_STORE"] = str(store.root)
        try:
            pages = time_pages(app_pages(), repeats)
        finally:
            if previous is None:
                os.environ.pop("PRUNESCOPE_STORE")
            else:
                os.environ["PRUNESCOPE_STORE"] = previous
        kinds = {k: sum(1 for r in store.list() if r["kind"] == k) for k in sorted({r["kind"] for r in store.list()})}
    slow = [t for t, p in pages.items() if p["seconds"] >= TARGET_SECONDS]
    broken = [t for t, p in pages.items() if p["errors"]]
    return {"benchmark": "dashboard", "runs": added, "kinds": kinds, "templates": len(lines), "repeats": repeats,
            "target_seconds": TARGET_SECONDS, "pages": pages, "slowest": max(pages, key=lambda t: pages[t]["seconds"]),
            "all_under_target": not slow, "slow_pages": slow, "pages_with_errors": broken,
            "setup_seconds": {"tiny_runs": round(made, 1), "fill_store": round(filled, 1)}}
