"""Command: python -m analysis latency RUN_ID[,RUN_ID...]"""

from __future__ import annotations

import argparse
from typing import Any

from analysis.cli.base import add_precision_flag, arguments, command
from analysis.service.reports import LatencyOptions, measure_runs
from analysis.service.runs import RunStore


def _latency_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", help="comma-separated run ids (finished fine-tune or prune runs that kept weights)")
    parser.add_argument("--batch-size", type=int, default=LatencyOptions.batch_size)
    parser.add_argument("--repeats", type=int, default=LatencyOptions.repeats, help="timed passes (median kept)")
    add_precision_flag(parser)
    parser.add_argument("--kernel", default=LatencyOptions.kernel,
                        help="unstructured-sparse runs: numba or mkl (the sparse path), or dense")


def describe_latency(result: dict[str, Any]) -> str:
    lines = [f"{r['run_id']}: {r['latency_ms_per_batch']:.1f} ms per batch of {r['batch_size']}, "
             f"{r['examples_per_second']:.1f} examples/s ({r['execution']}, {r['threads']} threads)"
             for r in result["measured"].values()]
    lines += [f"{run_id}: not measured: {reason}" for run_id, reason in result["failed"].items()]
    return "\n".join(lines)


@command("latency", "measure CPU latency of stored runs' models on their dev set (stored as latency.json)",
         describe_latency)
@arguments(_latency_arguments)
def latency(args: argparse.Namespace) -> dict[str, Any]:
    options = LatencyOptions(args.batch_size, args.repeats, args.threads or 0, args.kernel, args.precision)
    return measure_runs(RunStore(), [r.strip() for r in args.runs.split(",") if r.strip()], options)
