"""The executor flags every run command takes (--executor local|ray and their options)."""

from __future__ import annotations

import argparse
import contextlib

from analysis.core.errors import ConfigError
from analysis.service.runs import EXECUTORS, Executor, ExecutorOptions, using_executor


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """--executor and its options (runtime choices: never part of a run id)."""
    grp = parser.add_argument_group("executor (where member runs execute; results always land in the store)")
    grp.add_argument("--executor", choices=EXECUTORS.names(), default="local",
                     help="local: this machine (default); ray: one Ray task per member run")
    grp.add_argument("--workers", type=int, help="local: member runs at once in separate processes (default 1: "
                                                 "in this process, one after the other)")
    grp.add_argument("--ray-address", help="ray: an existing cluster (e.g. HEAD_IP:6379 or auto); "
                                           "default: start a local cluster for this command")
    grp.add_argument("--ray-num-cpus", type=float, help="ray: CPUs reserved per member run (default 1)")
    grp.add_argument("--ray-num-gpus", type=float, help="ray: GPUs reserved per member run (default 0; 1 on a GPU "
                                                        "cluster, with --device auto)")


def executor_from_args(args: argparse.Namespace) -> contextlib.AbstractContextManager[Executor]:
    """`using_executor` for the flags of `add_executor_flags` (checked: each option belongs to one executor)."""
    name = getattr(args, "executor", "local") or "local"
    given = {k: getattr(args, k, None) for k in ("workers", "ray_address", "ray_num_cpus", "ray_num_gpus")}
    misplaced = [k for k, v in given.items() if v is not None and not (k.startswith("ray_") == (name == "ray"))]
    if misplaced:
        flags = ", ".join("--" + k.replace("_", "-") for k in misplaced)
        raise ConfigError(f"{flags} do(es) not apply to --executor {name}",
                          fix="--workers goes with --executor local; --ray-* options with --executor ray")
    if given["workers"] is not None and given["workers"] < 1:
        raise ConfigError(f"--workers {given['workers']} must be at least 1", fix="use --workers 1 (or 2, ...)")
    for key in ("ray_num_cpus", "ray_num_gpus"):
        if given[key] is not None and given[key] < 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be >= 0", fix="use e.g. --ray-num-gpus 1")
    options = ExecutorOptions(workers=given["workers"] or 1, device=getattr(args, "device", None),
                              ray_address=given["ray_address"],
                              ray_num_cpus=1.0 if given["ray_num_cpus"] is None else given["ray_num_cpus"],
                              ray_num_gpus=0.0 if given["ray_num_gpus"] is None else given["ray_num_gpus"])
    return using_executor(name, options)
