"""Command: python -m analysis whatif RUN_ID [--sparsity S --criterion C] [--heads L.H,...] [--ffn L:F,...]
[--layers L,...]: edit a stored model without retraining and report what the edit does on its dev set."""

from __future__ import annotations

import argparse
import time
from typing import Any

from analysis.cli.base import arguments, command
from analysis.service.runs import RunStore
from analysis.service.whatif import Edit, parse_ffn, parse_heads, parse_layers, session


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="a finished fine-tune or prune run that kept its weights")
    parser.add_argument("--sparsity", type=float, default=0.0, help="share of weights zeroed (default 0)")
    parser.add_argument("--criterion", default="magnitude", help="magnitude (default) or random")
    parser.add_argument("--scope", default="global", help="global (one threshold, default) or per-tensor")
    parser.add_argument("--modules", help="the matrices the sparsity applies to: some of query,key,value,attn_out,"
                                          "ffn_in,ffn_out (default all)")
    parser.add_argument("--heads", help="heads removed, LAYER.HEAD,... (0-based), e.g. 0.3,5.11")
    parser.add_argument("--ffn", help="FFN neurons removed per layer, LAYER:SHARE,..., e.g. 0:0.5,3:0.25")
    parser.add_argument("--layers", help="whole layers dropped, e.g. 4,5")
    parser.add_argument("--seed", type=int, default=0, help="the random criterion's draw")
    parser.add_argument("--sample", action="store_true", help="only the first estimate (a seeded sample of the dev set)")
    parser.add_argument("--latency", action="store_true", help="also time the compacted structured edit")
    parser.add_argument("--precision", default="auto", help="auto (default), fp32, bf16 or fp16")


def describe(result: dict[str, Any]) -> str:
    lines = [f"{result['run_id']}: {result['edit_text']} -> {result['metric']} {result['value']:.4f} "
             f"[{result['ci_low']:.4f}, {result['ci_high']:.4f}] on {result['examples']} dev examples; change "
             f"{result['change']:+.4f} [{result['change_ci_low']:+.4f}, {result['change_ci_high']:+.4f}] vs unedited "
             f"{result['unedited']:.4f}"]
    if result["agreement"] is not None:
        lines.append(f"  agreement {result['agreement']:.3f}, KL {result['kl']:.4f}, {len(result['flipped'])} flipped "
                     f"(first {len(result['flipped'])} listed in --json)")
    lines.append("  sparsity per layer: " + " ".join(f"{s:.2f}" for s in result["layer_sparsity"])
                 + f" (encoder {result['encoder_sparsity']:.3f})")
    if "latency" in result:
        lat = result["latency"]
        lines.append(f"  latency {lat['edited_ms']:.1f} ms vs {lat['unedited_ms']:.1f} ms per batch of {lat['batch_size']}")
    lines.append(f"  {result['seconds']:.2f} s (model loaded in {result['load_seconds']:.1f} s, {result['precision']})")
    return "\n".join(lines)


@command("whatif", "edit a stored model without retraining (weights, heads, FFN neurons, layers); metric and change",
         describe)
@arguments(_arguments)
def whatif(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    loaded = session(RunStore(), args.run_id, args.precision)
    modules = tuple(m.strip() for m in args.modules.split(",") if m.strip()) if args.modules else Edit().modules
    edit = Edit(sparsity=args.sparsity, criterion=args.criterion, scope=args.scope, modules=modules,
                heads=parse_heads(args.heads), ffn=parse_ffn(args.ffn), layers=parse_layers(args.layers), seed=args.seed)
    result = loaded.evaluate(edit, full=not args.sample, latency=args.latency)
    return {"status": "done", **result, "load_seconds": loaded.load_seconds,
            "total_seconds": time.perf_counter() - started}
