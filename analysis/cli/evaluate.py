"""Command: python -m analysis evaluate RUN_ID[,RUN_ID...] (--dataset NAME [--split S] | --eval-file F)."""

from __future__ import annotations

import argparse
from typing import Any

from analysis.cli.base import arguments, command
from analysis.service.reports import EvalData, evaluate_runs
from analysis.service.runs import RunStore


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", help="comma-separated run ids (finished fine-tune or prune runs that kept weights)")
    parser.add_argument("--dataset", help="a registered dataset (see `python -m analysis datasets`)")
    parser.add_argument("--split", help="its split (default: the dataset's evaluation split)")
    parser.add_argument("--eval-file", help="or a CSV/TSV/JSONL file whose labels belong to the models' label set")
    parser.add_argument("--text-columns", help="the file's text column(s), comma-separated (default: the run's)")
    parser.add_argument("--label-column", help="the file's label column (default: the run's)")
    parser.add_argument("--eval-size", type=int, help="a seeded sample of this many examples (default: all)")
    parser.add_argument("--precision", default="auto", help="auto (default), fp32, bf16 or fp16")
    parser.add_argument("--seed", type=int, default=0, help="the sample's and the bootstrap's seed")
    parser.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples (default 1000)")


def describe(result: dict[str, Any]) -> str:
    lines = [f"on {result['data']}:"]
    for run in result["runs"]:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in run["metrics"].items())
        lines.append(f"  {run['run_id']}: {shown} ({run['examples']} examples{', from the store' if run['cached'] else ''})")
    for pair in result.get("pairs", []):
        lines.append(f"  {pair['a']} - {pair['b']}: {pair['metric']} {pair['diff']:+.4f} "
                     f"[{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}], McNemar p={pair['mcnemar_p_exact']}")
    return "\n".join(lines)


@command("evaluate", "evaluate stored models on any registered split or a file, with paired tests between them",
         describe)
@arguments(_arguments)
def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    columns = tuple(c.strip() for c in args.text_columns.split(",") if c.strip()) if args.text_columns else None
    data = EvalData(dataset=args.dataset, split=args.split, eval_file=args.eval_file, text_columns=columns,
                    label_column=args.label_column, eval_size=args.eval_size)
    run_ids = [r.strip() for r in args.runs.split(",") if r.strip()]
    return {"status": "done", **evaluate_runs(RunStore(), run_ids, data, args.precision, args.seed, args.resamples)}
