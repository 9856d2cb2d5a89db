"""The `ray` executor: each member run of a study is one Ray task; the driver keeps the store.

Flow for the members not yet finished in the store:
1. What they look up in the store (a pruning run's teacher, a run given as masks) is computed first, once,
   as tasks of its own, then packed (record, metrics, artefacts, weights) and put in Ray's object store once.
2. The driver claims each member's run in its store (so the dashboard shows it running and no other
   process runs it too), and submits one task per member with the runs it needs.
3. A task runs the member with `runs.experiment.execute` against a scratch store in a temporary folder on its node,
   with the device resolved there (`--device auto`: the GPU Ray gave it, else the CPU), packs every run it
   made and deletes the folder. The driver writes each packed run into the store as the task finishes.
A task whose member fails returns the error (the member's run is marked failed, the others go on); a task
lost with its node is retried once by Ray, then recorded as failed. Ray is imported only here, only when
the executor is used.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from analysis.core.config import ConfigBase
from analysis.core.errors import ConfigError
from analysis.core.precision import set_threads, usable_cores
from analysis.core.settings import PROJECT_ROOT
from analysis.runs.executors import Executor, Member, OnDone, error_text, register
from analysis.runs.experiment import EXPERIMENTS, RunContext, execute, run_id
from analysis.runs.transfer import (
    Need,
    has_weights,
    needs_of,
    pack_run,
    restore_stopped,
    resumable,
    unpack_done,
    write_back,
)
from analysis.store.index import RunStore

BEAT_SECONDS = 15.0
SCRATCH_PREFIX = "prunescope-ray-"  # + the worker's pid: a folder whose worker is gone is removed
PASSED_ENV = ("PRUNESCOPE_DATA", "PRUNESCOPE_OFFLINE", "HF_HUB_OFFLINE", "HF_HOME")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs the `ray` package, which is not installed here",
                          fix="install it into the venv: .venv/bin/pip install -r requirements.txt "
                              "(the same on every node of the cluster)") from None
    return ray


def worker_env() -> dict[str, str]:
    """Environment of the Ray workers: this project importable, and the data settings of the driver."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, **{k: os.environ[k] for k in PASSED_ENV if k in os.environ}}


def local_cpus() -> int:
    return usable_cores()


def ray_cpus() -> float | None:
    """The CPUs Ray reserved for the task running here; None outside a Ray task."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        return float(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))
    except Exception:  # noqa: BLE001  (not in a Ray worker)
        return None


@register("ray")
class RayExecutor(Executor):
    """Member runs as Ray tasks on a local cluster (started here) or an existing one (--ray-address)."""

    name = "ray"

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._ray: Any = None
        self._started = False  # this executor started the cluster (and stops it in close)
        self._task: Any = None

    def precision_device(self, ctx: Any) -> str:
        """`auto` is resolved for the nodes' device: CUDA when each member reserves a GPU, else as asked."""
        asked = self.options.device or "auto"
        if asked == "auto" and self.options.ray_num_gpus > 0:
            return "cuda"
        return super().precision_device(ctx)

    def connect(self) -> Any:
        """ray.init once: join --ray-address, else start a local cluster sized to this machine."""
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            common = dict(log_to_driver=False, logging_level=logging.WARNING)
            try:
                if self.options.ray_address:  # other machines: tell their workers where the project and data are
                    ray.init(address=self.options.ray_address, runtime_env={"env_vars": worker_env()}, **common)
                else:  # workers started here inherit this environment and this working directory on sys.path
                    ray.init(num_cpus=local_cpus(), include_dashboard=False, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot start or join a Ray cluster: {exc}",
                                  fix="start one with `ray start --head` and pass --ray-address HEAD_IP:6379, "
                                      "or leave --ray-address out for a local cluster") from None
            self._started = True
        self._ray = ray
        self._task = ray.remote(run_member_task)
        return ray

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._started, self._ray = False, None

    def _submit(self, kind: str, config: ConfigBase, rid: str, save_weights: bool, need_weights: bool,
                bundle: list[Any], prerequisite: bool = False, resume: Any = None) -> Any:
        self.stats["prerequisites" if prerequisite else "submitted"] += 1
        task = self._task.options(num_cpus=self.options.ray_num_cpus, num_gpus=self.options.ray_num_gpus,
                                  max_retries=1, name=f"prunescope-{kind}-{rid}")
        return task.remote(kind, config, rid, save_weights, self.options.device or "auto", need_weights, resume,
                           *bundle)

    def _map(self, members: list[Member], ctx: RunContext, done: OnDone) -> None:
        store = ctx.store
        pending = self.served(members, store, done)
        if not pending:
            return  # everything is in the store: nothing submitted, no cluster started
        self.connect()
        shipped, wanted = self._prerequisites(store, [(rid, m.kind, m.config) for _, m, rid in pending])
        tasks: dict[Any, tuple[int, Member, str]] = {}
        try:
            elsewhere = self._submit_members(store, pending, shipped, wanted, tasks)
        except BaseException:
            self._cancel(tasks, store)
            raise

        def handle(ref: Any, index: int, member: Member, rid: str) -> None:
            result, error = self._fetch(ref)
            self._write_runs(store, result, rid)
            record = store.get(rid)
            if error is None and record is not None and record.status == "done":
                done(index, record)
            else:
                self.failed(store, member, rid, error or f"it ended {record.status if record else 'unrecorded'}")

        total = len(pending)
        self._collect(tasks, store, handle,
                      lambda n, m: ctx.progress(n, total, f"{m.label} ({n}/{total}, on ray)"))
        for index, member, rid in elsewhere:
            self._wait_elsewhere(store, index, member, rid, done)

    def _submit_members(self, store: RunStore, pending: list[tuple[int, Member, str]], shipped: dict[str, Any],
                        wanted: dict[str, list[str]], tasks: dict[Any, tuple[int, Member, str]]) -> list:
        """Claim each member's run and submit its task (into `tasks`); returns those running in another process."""
        # a member stopped with a checkpoint goes along with it, so its task continues it (packed before claiming)
        stopped = {rid: self._ray.put(pack_run(store, rid)) for _, _, rid in pending if resumable(store, rid)}
        elsewhere = []
        for index, member, rid in pending:
            fields = EXPERIMENTS.get(member.kind)().describe(member.config)
            if not store.claim(rid, member.kind, member.config.to_dict(), fields, keep_log=rid in stopped):
                elsewhere.append((index, member, rid))  # running in another live process: waited for at the end
                continue
            tasks[None] = (index, member, rid)  # claimed: interrupted from here on, even before it is submitted
            store.heartbeat(rid, 0.0, "submitted to ray")
            bundle = [shipped[n] for n in wanted[rid] if n in shipped]
            tasks[self._submit(member.kind, member.config, rid, member.save_weights, False, bundle,
                               resume=stopped.get(rid))] = tasks.pop(None)
        return elsewhere

    def _cancel(self, tasks: dict[Any, tuple[int, Member, str]], store: RunStore) -> None:
        """Interrupted: cancel the tasks still out and mark their runs interrupted (what finished is kept)."""
        for ref, (_, _, rid) in tasks.items():
            if ref is not None:
                self._ray.cancel(ref, force=True)
            store.fail(rid, "stopped: the study submitting it was interrupted", "interrupted")

    def _prerequisites(self, store: RunStore, runs: list[tuple[str, str, ConfigBase]]
                       ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """Compute the runs the members look up (once each), then put each in the object store once.

        Returns ({needed run id: object ref}, {member run id: [needed run ids]})."""
        wanted: dict[str, list[str]] = {}
        needs: dict[str, Need] = {}
        for member_id, kind, config in runs:
            wanted[member_id] = []
            for need in needs_of(kind, config):
                try:
                    rid = need.run_id or run_id(need.kind, need.config)
                except Exception:
                    continue  # the member itself reports a missing file
                needs[rid] = need
                wanted[member_id].append(rid)
        tasks = {}
        for rid, need in needs.items():
            if need.kind is None or _ready(store, rid, need):
                continue
            existing = store.get(rid)
            redo = existing is not None and existing.status == "done"  # done, but without the weights it needs
            fields = EXPERIMENTS.get(need.kind)().describe(need.config)
            if store.claim(rid, need.kind, need.config.to_dict(), fields, redo=redo):
                member = Member(need.kind, need.config, str(fields.get("label") or need.kind))
                tasks[self._submit(need.kind, need.config, rid, True, need.weights, [], True)] = (-1, member, rid)

        def handle(ref: Any, index: int, member: Member, rid: str) -> None:
            # a prerequisite that fails is no member: each member needing it tries again and reports the cause
            result, error = self._fetch(ref)
            self._write_runs(store, result, rid)
            record = store.get(rid)
            if record is not None and record.status == "running" and record.row.get("pid") == os.getpid():
                store.fail(rid, error or "the task returned no result")

        self._collect(tasks, store, handle)
        shipped = {rid: self._ray.put(pack_run(store, rid)) for rid, need in needs.items() if _ready(store, rid, need)}
        return shipped, wanted

    def _collect(self, tasks: dict[Any, tuple[int, Member, str]], store: RunStore,
                 handle: Callable[[Any, int, Member, str], None],
                 progress: Callable[[int, Member], None] | None = None) -> None:
        """Handle each task as it finishes; keep the claims of the others alive; cancel all if interrupted."""
        finished = 0
        try:
            while tasks:
                ready, _ = self._ray.wait(list(tasks), num_returns=1, timeout=BEAT_SECONDS)
                for ref in ready:
                    index, member, rid = tasks.pop(ref)
                    handle(ref, index, member, rid)
                    finished += 1
                    if progress is not None:
                        progress(finished, member)
                for _, _, rid in tasks.values():
                    store.beat(rid)
        except BaseException:
            self._cancel(tasks, store)
            raise

    def _fetch(self, ref: Any) -> tuple[dict[str, Any] | None, str | None]:
        """(the task's result, its error or None)."""
        try:
            result = self._ray.get(ref)
        except Exception as exc:  # the task or its worker died (node lost, out of memory), after its retry
            return None, f"the Ray task failed: {error_text(exc)}"
        return result, result["error"] if result["status"] != "done" else None

    @staticmethod
    def _write_runs(store: RunStore, result: dict[str, Any] | None, rid: str) -> None:
        """Write every run a task made into the store (the submitted one under this process's claim)."""
        for packed in (result or {}).get("runs", []):
            packed["record"]["executor"] = {"name": "ray", "node": result["node"], "node_id": result.get("node_id")}
            write_back(store, packed, claimed=packed["run_id"] == rid)

    def _wait_elsewhere(self, store: RunStore, index: int, member: Member, rid: str, done: OnDone) -> None:
        """A member another live process is running: wait for it to end, then take its result."""
        record = store.wait_while_active(rid)
        if record is not None and record.status == "done":
            self.stats["served"] += 1
            done(index, record)
        else:
            self.failed(store, member, rid, f"another process running it ended {record.status if record else '?'}")


def _ready(store: RunStore, rid: str, need: Need) -> bool:
    """The store holds this needed run finished (with its weights, when they are needed)."""
    if need.weights:
        return has_weights(store, rid)
    record = store.get(rid)
    return record is not None and record.status == "done"


def remove_orphaned_scratch() -> None:
    """Scratch folders of tasks whose worker was killed (a cancelled study, a crash) are removed by the next task."""
    from analysis.core.processes import process_alive

    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def node_id_here() -> str | None:
    """The Ray node this task runs on (two raylets on one machine share a host name, not a node id)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside a Ray worker
        return None


def run_member_task(kind: str, config: ConfigBase, expected_id: str, save_weights: bool, device: str,
                    need_weights: bool, resume: dict[str, Any] | None, *bundle: dict[str, Any]) -> dict[str, Any]:
    """In a Ray worker: run one config in a scratch store seeded with `bundle` (the runs it looks up) and
    `resume` (its own stopped attempt, continued from its checkpoint); return every run it made."""
    import platform

    remove_orphaned_scratch()
    cpus = ray_cpus()
    if cpus is not None:  # this task's CPUs, not the node's: tasks share a node
        set_threads(threads=max(1, int(cpus)))
    root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        scratch = RunStore(root / "runs")
        for packed in bundle:
            unpack_done(scratch, packed)
        if resume is not None:
            restore_stopped(scratch, resume)
        node = platform.node()
        node_id = node_id_here()
        rid = run_id(kind, config)
        if rid != expected_id:
            return {"run_id": rid, "status": "failed", "runs": [], "node": node, "node_id": node_id,
                    "error": f"node {node} computes run id {rid}, the driver {expected_id}: its data, model or code "
                             f"differ from the driver's (PRUNESCOPE_DATA, the model files, analysis.CODE_VERSION)"}
        error = None
        try:
            execute(kind, config, scratch, device=device, save_weights=save_weights, need_weights=need_weights)
        except Exception as exc:
            error = error_text(exc)
        shipped = {p["run_id"] for p in bundle}
        runs = [pack_run(scratch, row["run_id"]) for row in scratch.list()
                if row["run_id"] not in shipped and row["status"] != "running"]
        return {"run_id": rid, "status": "failed" if error else "done", "error": error, "runs": runs, "node": node,
                "node_id": node_id}
    finally:
        shutil.rmtree(root, ignore_errors=True)
