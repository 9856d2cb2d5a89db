"""bench whatif: seconds from an edit to its first estimate, to the whole dev set, and for a repeated edit, on the
default model fine-tuned on SST-2 (trained here in a temporary store unless --run names a stored one)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from analysis.bench.core import BENCHES, _capability, in_subprocess

TARGETS = {"first_estimate_s": 2.0, "full_dev_s": 6.0, "cached_s": 0.2}


def _worker(run_id: str | None, store_root: str | None, train_size: int, threads: int | None) -> dict[str, Any]:
    from analysis.core.config import FinetuneConfig
    from analysis.core.precision import set_threads
    from analysis.reports.whatif import Edit, WhatIf
    from analysis.runs.experiment import execute
    from analysis.store.index import RunStore

    set_threads(threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(store_root or tmp)
        trained = None
        if run_id is None:
            start = time.perf_counter()
            cfg = FinetuneConfig.from_flat({}, {"dataset": "sst2", "train_size": train_size, "epochs": 1})
            run_id = execute("finetune", cfg, store).record.run_id
            trained = time.perf_counter() - start
        start = time.perf_counter()
        session = WhatIf(store, run_id)
        load = time.perf_counter() - start
        edit = Edit(sparsity=0.5, heads=((0, 0), (3, 5)))
        start = time.perf_counter()
        estimate = session.evaluate(edit, full=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        full = session.evaluate(edit, full=True)
        full_s = time.perf_counter() - start
        start = time.perf_counter()
        session.evaluate(edit, full=True)
        cached = time.perf_counter() - start
        import torch

        return {"run_id": run_id, "trained_seconds": trained, "load_seconds": load, "first_estimate_s": first,
                "full_dev_s": full_s, "cached_s": cached, "examples": full["examples"],
                "sample_examples": estimate["examples"], "value": full["value"], "unedited": full["unedited"],
                "estimate": estimate["value"], "precision": session.precision, "threads": torch.get_num_threads()}


@BENCHES.register("whatif")
def bench_whatif(args: argparse.Namespace) -> dict[str, Any]:
    """The explorer's latencies (after the model is loaded), in a fresh process, in this machine's precision."""
    load_before = os.getloadavg()
    out = in_subprocess(_worker, getattr(args, "run", None), os.environ.get("PRUNESCOPE_STORE") if getattr(
        args, "run", None) else None, min(args.train_size, 2000), args.threads)
    return {"benchmark": "whatif", "cpu_capability": _capability(), **out, "targets": TARGETS,
            "within_targets": all(out[k] <= v for k, v in TARGETS.items()), "cpu_count": os.cpu_count(),
            "load_average_before": load_before, "load_average_after": os.getloadavg()}
