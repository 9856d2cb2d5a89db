"""Command: python -m analysis demo (the quick tour, `studies/quick_tour.py`)."""

from __future__ import annotations

import argparse
from functools import reduce
from typing import Any

from analysis.cli.base import add_field_flags, arguments, base_config, command, flags_given
from analysis.cli.commands import run_with_bar
from analysis.service.runs import DemoConfig


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    flat = {k: v for k, v in DemoConfig.flat_fields().items() if k not in ("method", "options")}
    add_field_flags(parser, flat, "demo")
    defaults = DemoConfig()
    for action in parser._actions:  # the demo's own defaults (2,000 examples, 1 epoch), not the fine-tune's
        if action.dest.startswith("cfg__") and action.dest[5:] in flat:
            action.help = f"(default: {reduce(getattr, flat[action.dest[5:]].path, defaults)})"
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


@command("demo", "a small real study on the embedded default model: fine-tune, pruning sweep, probes, heads")
@arguments(_demo_arguments)
def demo(args: argparse.Namespace) -> dict[str, Any]:
    config = DemoConfig.from_flat(base_config(args), flags_given(args))
    outcome, out, out["table"] = run_with_bar("demo", config, "demo", args.device, "table")
    out["notes"] = outcome.record.summary.get("notes", [])
    return out
