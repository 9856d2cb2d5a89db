"""CLI plumbing: commands register themselves; config dataclass fields become flags.

Every command takes `--config FILE.yaml` (nested or flat keys) and flags that override it, and with
`--json` prints exactly one JSON object as its last stdout line (errors included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
import types
import typing
from typing import Any, Callable

from analysis.core.config import PRECISIONS, FlatField, load_yaml
from analysis.core.errors import ConfigError, PruneScopeError
from analysis.core.precision import set_threads
from analysis.core.registry import Registry


@dataclasses.dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]
    describe: Callable[[dict[str, Any]], str] = lambda result: json.dumps(result, indent=2, default=str)


COMMANDS: Registry[Command] = Registry("command", ("analysis.cli",))


def command(name: str, help: str, describe: Callable[[dict[str, Any]], str] | None = None):
    """Register `fn(args) -> dict` as a command; `fn.arguments(parser)` may add its flags."""

    def wrap(fn: Callable[[argparse.Namespace], dict[str, Any]]):
        adder = getattr(fn, "arguments", lambda parser: None)
        COMMANDS.register(name)(Command(help, adder, fn, describe or Command.describe))
        return fn

    return wrap


def arguments(adder: Callable[[argparse.ArgumentParser], None]):
    def wrap(fn):
        fn.arguments = adder
        return fn

    return wrap


def flag_type(tp: Any) -> tuple[Any, dict[str, Any]]:
    """argparse settings for an annotated field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return flag_type(inner)
    if tp is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if origin is tuple:
        return str, {"metavar": "A,B"}
    return (tp if tp in (int, float, str) else str), {}


def add_field_flags(parser: argparse.ArgumentParser, flat: dict[str, FlatField], group: str,
                    show_defaults: bool = True) -> None:
    """One `--field-name` flag per config field; unset flags stay out of the namespace (SUPPRESS)."""
    grp = parser.add_argument_group(group)
    for name, ff in flat.items():
        conv, extra = flag_type(ff.type)
        kwargs: dict[str, Any] = {"dest": f"cfg__{name}", "default": argparse.SUPPRESS, **extra}
        if conv is not None:
            kwargs["type"] = conv
        default = ff.field.default if ff.field.default is not dataclasses.MISSING else None
        kwargs["help"] = f"(default: {default})" if show_defaults else "(default: the method's own)"
        kwargs.setdefault("metavar", name.upper())
        if name == "precision":
            kwargs.update(choices=PRECISIONS, help=PRECISION_HELP)
        grp.add_argument("--" + name.replace("_", "-"), **kwargs)
        if name == "precision":  # the old switch, kept as an alias: --bf16 = --precision bf16, --no-bf16 = fp32
            grp.add_argument("--bf16", dest="cfg__bf16", default=argparse.SUPPRESS, action=argparse.BooleanOptionalAction,
                             help="alias: --bf16 is --precision bf16, --no-bf16 is --precision fp32")


PRECISION_HELP = ("numeric precision: auto (default; bf16 where this device runs it fast: AMX/AVX512-BF16 CPUs, "
                  "bf16-capable GPUs; fp16 with a gradient scaler on older GPUs; else fp32), fp32, bf16 or fp16")


def add_precision_flag(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """`--precision` for commands without a config (explain, benchmarks)."""
    parser.add_argument("--precision", choices=PRECISIONS, default=default,
                        help=PRECISION_HELP + f"; default here: {default}")


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    return {k[len("cfg__"):]: v for k, v in vars(args).items() if k.startswith("cfg__")}


def base_config(args: argparse.Namespace) -> dict[str, Any]:
    return load_yaml(args.config) if getattr(args, "config", None) else {}


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="read settings from a YAML file; flags override it")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    parser.add_argument("--threads", type=int, help="torch threads for this process (default: the cores it may use, "
                                                    "divided by $PRUNESCOPE_WORKERS)")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises a ConfigError (so --json still gets its JSON line) instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"bad command line: {message}",
                          fix=f"see `{self.prog} --help`; write negative numbers as --flag=-1e-4")



def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("terminated by SIGTERM")


def stop_on_sigterm() -> None:
    """`kill PID` stops a command like Ctrl-C does: the run in progress is marked interrupted (its checkpoint kept)
    instead of staying "running" until its heartbeat goes stale. Background jobs started from a shell ignore SIGINT."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m analysis", description="PruneScope experiments")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        cmd = COMMANDS.get(name)
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        add_common(p)
        cmd.add_arguments(p)
    wants_json = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if wants_json:
            print(json.dumps({"status": "error", "error": exc.message, "type": "ConfigError"}))
        return 2
    if not args.command:
        parser.print_help()
        return 2
    cmd = COMMANDS.get(args.command)
    stop_on_sigterm()
    try:
        set_threads(threads=args.threads)
        result = cmd.run(args)
    except PruneScopeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "error", "error": exc.message, "type": type(exc).__name__}))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "interrupted"}))
        return 130
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(cmd.describe(result))
    return 0 if result.get("status") not in ("failed", "error") else 1
