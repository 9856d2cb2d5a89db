"""Commands `heads` (head importance, stored as a run), `explain` (attention and token attributions of one
text, optionally two models side by side) and the `bench heads` benchmark."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from analysis.cli.base import add_field_flags, add_precision_flag, arguments, base_config, command, flags_given
from analysis.cli.commands import add_dry_run_flag, describe_outcome, dry_run, run_with_bar
from analysis.core.errors import ConfigError
from analysis.core.precision import autocast, resolve
from analysis.service.explain import HeadsConfig, TruncationWarning, explain_side_by_side, load_explained
from analysis.service.explain import explain as explain_one
from analysis.service.runs import RunStore


def _heads_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a run id (a finetune/prune run with weights), or 'default'")
    add_field_flags(parser, {k: v for k, v in HeadsConfig.flat_fields().items() if k != "target"}, "head importance")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    add_dry_run_flag(parser)


def describe_heads(result: dict[str, Any]) -> str:
    if result.get("status") == "dry-run":
        return describe_outcome(result)
    lines = [f"run {result['run_id']}: {result['status']} ({'from the store' if result['cached'] else 'new run'}), "
             f"{result['importance']['examples']} examples of {result['importance']['dataset']} "
             f"(integrated gradients on {result['importance']['ig_examples']})"]
    for name, key in (("Michel importance (L2-normalised per layer)", "michel"), ("IG on gates, E|IG|", "ig")):
        lines.append(name + ", layers x heads (- = removed):")
        for layer, row in enumerate(result["importance"][key]):
            lines.append(f"  layer {layer}: " + " ".join("  -  " if v is None else f"{v:.3f}" for v in row))
    lines.append(f"IG relative convergence delta: {result['metrics'].get('ig_relative_delta', float('nan')):.2e}")
    return "\n".join(lines + [f"  {result['path']}"])


@command("heads", "head importance (Michel et al. + integrated gradients on the gates) of a run or 'default'",
         describe_heads)
@arguments(_heads_arguments)
def heads(args: argparse.Namespace) -> dict[str, Any]:
    config = HeadsConfig.from_flat(base_config(args), {**flags_given(args), "target": args.target})
    if args.dry_run:
        return dry_run("heads", config, args.device)
    _, out, out["importance"] = run_with_bar("heads", config, f"heads {args.target}", args.device, "heads")
    return out


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a run id (a finetune/prune run with weights), or 'default'")
    parser.add_argument("--text", required=True, help="the input to explain (cut to the model's maximum length)")
    parser.add_argument("--compare", metavar="RUN_ID", help="a second model (run id or default), side by side")
    parser.add_argument("--layer", type=int, help="only this layer's attention (default: every layer)")
    parser.add_argument("--head", type=int, help="only this head's attention (needs --layer)")
    parser.add_argument("--target-class", type=int, help="the class to attribute (default: the prediction)")
    parser.add_argument("--steps", type=int, default=50, help="integration steps for the token attributions")
    parser.add_argument("--max-length", type=int, help="cut the text to this many tokens (default: the model's)")
    add_precision_flag(parser, default="fp32")  # token attributions (integrated gradients) need fp32's accuracy


def describe_explain(result: dict[str, Any]) -> str:
    lines = [f"warning: {w}" for w in result["warnings"]]
    for side in result["models"]:
        lines.append(f"{side['name']}: class {side['target']}, p={[round(p, 3) for p in side['prediction']]}, "
                     f"sum of attributions {side['attribution_sum']:.4f}, delta {side['delta']:.2e}")
        lines.append("  " + " ".join(f"{t}({a:+.3f})" for t, a in zip(side["tokens"], side["attributions"])))
        lines += [f"  note: {note}" for note in side["notes"]]
    return "\n".join(lines)


@command("explain", "attention maps and token attributions of a model (or two side by side) on one text",
         describe_explain)
@arguments(_explain_arguments)
def explain(args: argparse.Namespace) -> dict[str, Any]:
    store = RunStore()
    if not 1 <= args.steps <= 1000:
        raise ConfigError(f"--steps {args.steps} is out of range", fix="use e.g. --steps 50 (1..1000)")
    names = [args.target] + ([args.compare] if args.compare else [])
    loaded = {n: load_explained(store, n) for n in names if n != "default"}
    labels = next((int(m.model.config.num_labels) for m in loaded.values()), 2)
    loaded.update({n: load_explained(store, n, labels) for n in names if n == "default"})
    options = dict(layer=args.layer, head=args.head, target=args.target_class, n_steps=args.steps,
                   max_length=args.max_length)
    with warnings.catch_warnings(record=True) as caught, autocast("cpu", resolve(args.precision, "cpu")):
        warnings.simplefilter("always")
        if args.compare:
            both = explain_side_by_side(loaded[args.target], loaded[args.compare], args.text, **options)
            sides = [both["left"], both["right"]]
        else:
            sides = [explain_one(loaded[args.target], args.text, **options)]
    messages = list(dict.fromkeys(str(w.message) for w in caught if isinstance(w.message, TruncationWarning)))
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)
    return {"status": "ok", "text": args.text, "models": sides, "warnings": messages}
