"""Command: python -m analysis bench NAME (every benchmark of `analysis.bench`)."""

from __future__ import annotations

import argparse
from typing import Any

from analysis.bench.core import BENCHES
from analysis.cli.base import add_precision_flag, arguments, command


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="which benchmark: " + ", ".join(BENCHES.names()))
    parser.add_argument("--model", default="default")
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (the median is reported)")
    add_precision_flag(parser)
    parser.add_argument("--runs", type=int, default=500, help="bench dashboard: runs in the temporary store")
    parser.add_argument("--run", help="bench whatif: a stored fine-tune to edit (default: fine-tune one on SST-2 here)")


@command("bench", "measure speed and memory (train: our loop vs the HF Trainer)")
@arguments(_bench_arguments)
def bench(args: argparse.Namespace) -> dict[str, Any]:
    return BENCHES.get(args.name)(args)
