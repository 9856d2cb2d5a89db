"""The core commands: finetune, runs, show, datasets."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from analysis.cli.base import add_field_flags, add_precision_flag, arguments, base_config, command, flags_given
from analysis.cli.executors import add_executor_flags, executor_from_args
from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.service.catalog import (
    FINETUNE_METHODS,
    PRUNING_METHODS,
    PruneConfig,
    dataset_names,
    get_card,
    option_flags,
)
from analysis.service.runs import EXPERIMENTS, Outcome, RunStore, canonical, execute, run_id


def progress_bar(description: str) -> tuple[Callable[[int, int, str], None], Callable[[], None]]:
    """A tqdm bar on stderr (stdout stays clean for --json); returns (update, close)."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=description, file=sys.stderr, dynamic_ncols=True, disable=None)

    def update(done: int, total: int, message: str) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return update, bar.close


def run_with_bar(kind: str, config: Any, label: str, device: str = "auto", artefact: str | None = None,
                 **execute_kwargs: Any) -> tuple[Outcome, dict[str, Any], Any]:
    """Execute one experiment under a progress bar; returns (outcome, its JSON, the named artefact or None)."""
    update, close = progress_bar(label)
    try:
        outcome = execute(kind, config, device=device, progress=update, **execute_kwargs)
    finally:
        close()
    stored = RunStore().load_artifact_json(outcome.record.run_id, artefact) if artefact else None
    return outcome, outcome_json(outcome), stored


def add_runtime_flags(parser: argparse.ArgumentParser, weights: bool = True, dry: bool = True) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    if weights:
        parser.add_argument("--no-save-weights", action="store_true", help="do not keep the trained weights")
    if dry:
        add_dry_run_flag(parser)


def add_dry_run_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved config and its run id (and whether the store has it); run nothing")


def dry_run(kind: str, config: Any, device: str = "auto") -> dict[str, Any]:
    """What a launch would run: the canonical config (precision resolved here, options normalised) and its id."""
    resolved = canonical(kind, config, device)
    rid = run_id(kind, resolved, device)
    stored = RunStore().get(rid)
    return {"status": "dry-run", "kind": kind, "run_id": rid, "config": resolved.to_dict(),
            "stored": stored.status if stored is not None else None}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    rec = outcome.record
    return {"run_id": rec.run_id, "status": rec.status, "cached": outcome.cached, "metrics": rec.metrics,
            "summary": {k: v for k, v in rec.summary.items() if k != "epoch_metrics"},
            "error": rec.error, "path": str(rec.path)}


def split_options(flags: dict[str, Any], option_names: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate method option flags (e.g. --p) from config flags."""
    options = {k: v for k, v in flags.items() if k in option_names}
    return {k: v for k, v in flags.items() if k not in option_names}, options


def describe_outcome(result: dict[str, Any]) -> str:
    if result.get("status") == "dry-run":
        stored = f"the store has it ({result['stored']})" if result["stored"] else "not in the store"
        return f"dry run: {result['kind']} run {result['run_id']} ({stored})\n" + json.dumps(result["config"], indent=2)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.get("metrics", {}).items() if isinstance(v, float))
    source = "from the store" if result.get("cached") else "new run"
    return f"run {result['run_id']}: {result['status']} ({source}) {metrics}\n  {result['path']}"


def experiment_command(name: str, help: str, config_cls: type, methods: Any) -> None:
    """Register a command that builds `config_cls` from --config + flags (+ method option flags) and runs it."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_field_flags(parser, {k: v for k, v in config_cls.flat_fields().items() if k != "options"}, "experiment")
        add_field_flags(parser, option_flags(methods), "method options (see --method)", show_defaults=False)
        add_runtime_flags(parser)

    def run(args: argparse.Namespace) -> dict[str, Any]:
        names = set(option_flags(methods)) - set(config_cls.flat_fields())
        flags, options = split_options(flags_given(args), names)
        base, base_options = split_options(base_config(args), names)  # a YAML file may give `p: 0.3` flat too
        options = {**(base.get("options") or {}), **base_options, **options}
        if options:
            flags["options"] = options
        config = config_cls.from_flat(base, flags)
        if args.dry_run:
            return dry_run(name, config, args.device)
        return run_with_bar(name, config, f"{name} {config.data.dataset}", args.device,
                            save_weights=not args.no_save_weights)[1]

    command(name, help, describe_outcome)(arguments(add_arguments)(run))


experiment_command("finetune", "fine-tune a model on a task (vanilla or Child-Tuning)", FinetuneConfig,
                   FINETUNE_METHODS)
experiment_command("prune", "prune a model on a task (sparsebert, magnitude, heads, ...)", PruneConfig,
                   PRUNING_METHODS)


SWEEPS = {"pruning": "sweep-pruning", "child-tuning": "study-child-tuning"}  # study name -> experiment kind
SKIPPED_IN_STUDIES = ("options", "method_options", "method", "sparsity", "seed")


def study_flags(kinds: list[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for kind in kinds:  # a flag shared by several studies means the same thing in each
        flat.update({k: v for k, v in EXPERIMENTS.get(kind).config_cls.flat_fields().items()
                     if k not in SKIPPED_IN_STUDIES})
    return flat


def run_study(kind: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build a study config from --config + flags, run it (finished runs come from the store), add its table."""
    config_cls = EXPERIMENTS.get(kind).config_cls
    given = flags_given(args)
    foreign = sorted(k for k in given if k not in config_cls.flat_fields())
    if foreign:
        raise ConfigError(f"flag(s) {', '.join('--' + k.replace('_', '-') for k in foreign)} do not apply to the "
                          f"{name} study", fix="see --help")
    config = config_cls.from_flat(base_config(args), given)
    if args.dry_run:
        return dry_run(kind, config, args.device)
    with executor_from_args(args) as executor:  # --executor local|ray: where the member runs execute
        outcome, out, out["table"] = run_with_bar(kind, config, name, args.device, "table",
                                                  save_weights=not args.no_save_weights)
    out["executor"] = {"name": executor.name, **executor.stats}
    store = RunStore()
    if "summary.json" in store.artefacts(outcome.record.run_id):
        out["study"] = store.load_artifact_json(outcome.record.run_id, "summary")
    return out


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", choices=sorted(SWEEPS), help="which sweep")
    add_field_flags(parser, study_flags(list(SWEEPS.values())), "sweep")
    add_runtime_flags(parser)
    add_executor_flags(parser)


@command("sweep", "run a resumable sweep (pruning: methods x sparsities x seeds; child-tuning)", describe_outcome)
@arguments(_sweep_arguments)
def sweep(args: argparse.Namespace) -> dict[str, Any]:
    return run_study(SWEEPS[args.study], f"sweep {args.study}", args)


def _scale_arguments(parser: argparse.ArgumentParser) -> None:
    add_field_flags(parser, study_flags(["study-scale"]), "data-scale study")
    add_runtime_flags(parser)
    add_executor_flags(parser)


@command("scale", "the data-scale study: metric vs training size, transformer vs LSTMs", describe_outcome)
@arguments(_scale_arguments)
def scale(args: argparse.Namespace) -> dict[str, Any]:
    return run_study("study-scale", "scale", args)


def _probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a run id, or 'default' for the original pre-trained model")
    parser.add_argument("--probes", help="comma-separated (default: all): fidelity,cka,transfer,layer-probe,mlm")
    parser.add_argument("--task", help="the task of the layer probe for 'default' (a run uses its own task)")
    parser.add_argument("--seed", type=int, help="draws the probe sentences (CKA's WikiText-2 sample; default 0)")
    add_precision_flag(parser)
    add_runtime_flags(parser, weights=False)


@command("probe", "knowledge-loss probes of a stored model (or 'default'), stored as a run", describe_outcome)
@arguments(_probe_arguments)
def probe(args: argparse.Namespace) -> dict[str, Any]:
    from analysis.service.catalog import ProbeConfig

    raw = {"target": args.target, "precision": args.precision, **({"probes": args.probes} if args.probes else {}),
           **({"task": args.task} if args.task else {}), **({"seed": args.seed} if args.seed is not None else {})}
    config = ProbeConfig.from_dict(raw)
    if args.dry_run:
        return dry_run("probe", config, args.device)
    _, out, out["probes"] = run_with_bar("probe", config, f"probe {args.target}", args.device, "probes")
    return out


def _runs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", help="only runs of this kind (finetune, prune, ...)")
    parser.add_argument("--status", help="only runs with this status")
    parser.add_argument("--limit", type=int, help="at most this many, newest first")


def describe_runs(result: dict[str, Any]) -> str:
    width = max([9] + [len(r["kind"]) for r in result["runs"]])
    lines = [f"{'run_id':<17} {'kind':<{width}} {'status':<11} {'method':<12} {'dataset':<12} seed  metric or progress"]
    for r in result["runs"]:
        metric = next(iter(r["metrics"].items()), ("", ""))
        value = f"{metric[0]}={metric[1]:.4f}" if isinstance(metric[1], float) else ""
        if r["status"] == "running":
            value = progress_text(r)
        lines.append(f"{r['run_id']:<17} {r['kind']:<{width}} {r['status']:<11} {str(r['method']):<12} "
                     f"{str(r['dataset']):<12} {str(r['seed']):<5} {value}")
    if result["runs"]:
        return "\n".join(lines)
    wanted = {k: v for k, v in (result.get("filters") or {}).items() if v is not None}
    return f"no runs with {', '.join(f'{k} {v}' for k, v in wanted.items())}" if wanted else "the store is empty"


def progress_text(row: dict[str, Any]) -> str:
    """'37% · epoch 2, loss 0.41 · about 20 min left' (the run reports its own time left, from the pace it sees)."""
    return " · ".join([f"{100 * float(row.get('progress') or 0):.0f}%"] + ([str(row["message"])] if row.get("message")
                                                                          else []))


@command("runs", "list the runs in the store", describe_runs)
@arguments(_runs_arguments)
def runs(args: argparse.Namespace) -> dict[str, Any]:
    store = RunStore()
    store.mark_stale()
    return {"store": str(store.root), "runs": store.list(args.kind, args.status, args.limit),
            "filters": {"kind": args.kind, "status": args.status}}


@command("show", "show one run: config, metrics, versions, artefacts")
@arguments(lambda p: p.add_argument("run_id"))
def show(args: argparse.Namespace) -> dict[str, Any]:
    store = RunStore()
    rec = store.require(args.run_id)
    return {**store.record(args.run_id), "status": rec.status, "progress": rec.row["progress"],
            "artefacts": store.artefacts(args.run_id), "history_records": len(store.read_metrics(args.run_id))}


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_ids", nargs="+", help="runs to export (a study brings its member runs along)")
    parser.add_argument("--to", required=True, help="folder, e.g. results/pruning-sweep-sst2")
    parser.add_argument("--partial", action="store_true",
                        help="a study not yet finished: export the member runs it has finished so far (not the study), "
                             "to resume it from another store (`import` them there, then run the study again)")


@command("export", "export finished runs (records, metrics, small artefacts; no weights) to a results folder")
@arguments(_export_arguments)
def export(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from analysis.service.runs import export_runs, finished_so_far

    store = RunStore()
    return export_runs(store, finished_so_far(store, args.run_ids) if args.partial else args.run_ids, Path(args.to))


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a folder holding runs.jsonl files, e.g. results/")
    parser.add_argument("--if-empty", action="store_true", help="only when the store has no runs yet (first start)")


@command("import", "import exported runs (e.g. results/) into the store; runs already there are kept")
@arguments(_import_arguments)
def import_(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from analysis.service.runs import import_runs

    store = RunStore()
    if args.if_empty and store.list(limit=1):
        return {"added": 0, "skipped": "the store already has runs"}
    return import_runs(store, Path(args.folder))


@command("datasets", "list the registered datasets and their cards")
def datasets(args: argparse.Namespace) -> dict[str, Any]:
    cards = [get_card(n) for n in dataset_names()]
    return {"datasets": [{"name": c.name, "title": c.title, "task": c.task, "metrics": list(c.metrics),
                          "splits": list(c.splits), "labels": list(c.labels or [])} for c in cards]}


def _resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="an interrupted or failed run (see `runs --status interrupted`)")
    add_runtime_flags(parser, dry=False)


@command("resume", "continue an interrupted or failed run from its last checkpoint", describe_outcome)
@arguments(_resume_arguments)
def resume(args: argparse.Namespace) -> dict[str, Any]:
    from analysis.service.runs import resume as resume_run

    update, close = progress_bar(f"resume {args.run_id}")
    try:
        outcome = resume_run(args.run_id, device=args.device, save_weights=not args.no_save_weights, progress=update)
    finally:
        close()
    record = RunStore().record(outcome.record.run_id)
    return {**outcome_json(outcome), "resumed": outcome.resumed, "resumed_from": record.get("resumed_from")}
