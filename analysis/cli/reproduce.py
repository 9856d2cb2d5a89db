"""Command: python -m analysis reproduce RUN_ID (the logic is `reports/reproduce.py`)."""

from __future__ import annotations

from typing import Any

from analysis.cli.base import arguments, command
from analysis.cli.commands import progress_bar
from analysis.service.reports import DEFAULT_TOLERANCE, reproduce


def describe(result: dict[str, Any]) -> str:
    lines = [f"run {result['run_id']} ({result['kind']}): {result['status'].upper()} within {result['tolerance']:g} "
             f"({result['compared']} numbers, largest difference {result['max_abs_difference']:.3g}), "
             f"reproduced in {result['where']} in {result['seconds']} s"]
    for row in result["metrics"]:
        lines.append(f"  {row['name']}: stored {row['stored']}, reproduced {row['reproduced']}")
    lines += [f"  differs: {r['name']} stored {r['stored']} reproduced {r['reproduced']}" for r in result["differences"][:20]]
    lines += [f"  member {m['run_id']}: largest difference {m['max_abs_difference']:.3g}" for m in result["members"]
              if not m["ok"]]
    return "\n".join(lines + [f"  note: {n}" for n in result["notes"]])


def _arguments(parser: Any) -> None:
    parser.add_argument("run_id", help="a finished run (e.g. one imported from results/)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="absolute (default: %(default)s)")
    parser.add_argument("--in-place", action="store_true", help="re-run a run without weights in the real store")
    parser.add_argument("--store", dest="keep", metavar="DIR", help="reproduce into this folder and keep it")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


@command("reproduce", "re-run a stored run's exact config and compare its results with the stored ones", describe)
@arguments(_arguments)
def reproduce_command(args: Any) -> dict[str, Any]:
    update, close = progress_bar(f"reproduce {args.run_id}")
    try:
        return reproduce(args.run_id, tolerance=args.tolerance, in_place=args.in_place, keep=args.keep,
                         device=args.device, progress=update)
    finally:
        close()
