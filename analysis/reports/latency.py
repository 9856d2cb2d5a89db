"""Measured CPU inference latency of a stored run's model on its dev set, kept as the run's `latency.json`.

Timed the way `python -m analysis bench prune` times its variants (`time_passes` below, which the benchmarks use too: one warm-up pass, then
the median of `repeats` passes over the same batches). Unstructured-sparse runs execute through the sparse path
(`sparse_exec`: CSR kernels on the pruned Linear layers); structured runs are stored compacted and dense runs
are dense, so both run as they are. Nothing is estimated: a run without `latency.json` has no latency.

    python -m analysis latency RUN_ID[,RUN_ID...] [--batch-size 32] [--threads 1] [--kernel numba] --json
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from analysis.core.errors import ConfigError, PruneScopeError
from analysis.core.precision import check_precision
from analysis.store.index import RunStore

ARTEFACT = "latency"
KERNELS = ("numba", "mkl", "dense")  # dense: keep the masked zeros in dense Linear layers (no sparse path)


@dataclass(frozen=True)
class LatencyOptions:
    """How to time: batch size, timed passes (the median is kept), torch threads (0: this process's), the
    kernel for unstructured-sparse models, and the precision of dense layers (the CSR kernels are fp32)."""

    batch_size: int = 32
    repeats: int = 3
    threads: int = 0
    kernel: str = "numba"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ConfigError(f"unknown kernel {self.kernel!r}", fix=f"use one of: {', '.join(KERNELS)}")
        check_precision(self.precision)
        if self.batch_size < 1 or self.repeats < 1 or self.threads < 0:
            raise ConfigError("batch size and repeats must be >= 1 and threads >= 0",
                              fix="e.g. --batch-size 32 --repeats 3 --threads 1")


def is_unstructured(record: Any) -> bool:
    """Whether a run is an unstructured pruning run (its zeros are masked in place, not removed)."""
    if record.kind != "prune":
        return False
    from analysis.methods.pruning import PRUNING_METHODS
    from analysis.methods.pruning.unstructured import Unstructured

    method = record.config.get("method")
    return method in PRUNING_METHODS.names() and issubclass(PRUNING_METHODS.get(method), Unstructured)


def _execution(model: Any, record: Any, kernel: str) -> tuple[str, int]:
    """Swap the sparse layers of an unstructured run for CSR ones; returns (what runs, layers swapped)."""
    if not is_unstructured(record):
        return ("dense (compacted)" if record.kind == "prune" else "dense"), 0
    if kernel == "dense":
        return "dense (masked zeros kept)", 0
    from analysis.models.sparse_exec import to_sparse_execution_

    return f"sparse-{kernel}", to_sparse_execution_(model, kernel=kernel)


def measure_latency(store: RunStore, run_id: str, options: LatencyOptions = LatencyOptions()) -> dict[str, Any]:
    """Time the run's model over its dev set on the CPU, store the result as `latency.json` and return it."""
    import torch

    from analysis.core.config import DataConfig
    from analysis.core.precision import resolve
    from analysis.data.tasks import load_task
    from analysis.data.tokens import accepts_token_types, encode, iterate
    from analysis.training.evaluate import load_run_model

    record = store.require(run_id)
    if options.threads:
        torch.set_num_threads(options.threads)
    model, tokenizer, config = load_run_model(store, run_id)
    data_cfg = DataConfig.from_dict(config.get("data", {}))
    data = load_task(data_cfg, seed=int(config.get("seed", 0) or 0), need_train=False)
    enc = encode(data.eval, tokenizer, data_cfg.max_length)
    execution, swapped = _execution(model.cpu(), record, options.kernel)
    batches = [b for _, b in iterate(enc, options.batch_size, tokenizer.pad_token_id or 0, accepts_token_types(model))]
    precision = "fp32" if swapped else resolve(options.precision, "cpu")  # the CSR kernels take fp32
    seconds = time_passes(model, batches, options.repeats, precision)
    result = {"run_id": run_id, "latency_ms_per_batch": 1000 * seconds / len(batches),
              "examples_per_second": len(enc) / seconds, "seconds_per_pass": seconds, "examples": len(enc),
              "batches": len(batches), "eval_split": data.eval_split, "execution": execution,
              "sparse_layers": swapped, **asdict(options), "threads": torch.get_num_threads(),
              "precision": precision, "device": "cpu", "torch": torch.__version__, "measured_at": time.time()}
    store.save_artifact_json(run_id, ARTEFACT, result)
    return result


def stored_latency(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The run's stored latency measurement, or None when it was never measured."""
    if f"{ARTEFACT}.json" not in store.artefacts(run_id):
        return None
    return store.load_artifact_json(run_id, ARTEFACT)


def latency_rows(store: RunStore, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(index rows joined with their stored latency, ids of the rows without a measurement)."""
    measured, missing = [], []
    for row in rows:
        latency = stored_latency(store, row["run_id"])
        if latency is None:
            missing.append(row["run_id"])
        else:
            measured.append({**row, "latency": latency})
    return measured, missing


# ----------------------------------------------------------------------------------------------
# python -m analysis latency RUN_ID[,RUN_ID...]


def measure_runs(store: RunStore, run_ids: Sequence[str], options: LatencyOptions) -> dict[str, Any]:
    """Latency of each run ({run_id: result}), and why a run could not be measured ({run_id: reason})."""
    measured, failed = {}, {}
    for run_id in run_ids:
        try:
            measured[run_id] = measure_latency(store, run_id, options)
        except PruneScopeError as exc:  # one run without weights must not stop the others
            failed[run_id] = exc.message
    if not measured:
        raise ConfigError("no run could be measured: " + "; ".join(f"{k}: {v}" for k, v in failed.items()),
                          fix="pick finished fine-tune or prune runs that kept their weights (`python -m analysis runs`)")
    return {"status": "done", "measured": measured, "failed": failed}


def time_passes(model: Any, batches: list[dict], repeats: int, precision: str = "fp32") -> float:
    """Median seconds for one pass over `batches` (after one warm-up pass), in `precision`."""
    import statistics

    import torch

    from analysis.core.precision import autocast

    def one_pass() -> float:
        start = time.perf_counter()
        with torch.inference_mode(), autocast("cpu", precision):
            for batch in batches:
                model(**batch)
        return time.perf_counter() - start

    model.eval()
    one_pass()
    return statistics.median(one_pass() for _ in range(repeats))
