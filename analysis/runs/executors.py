"""Where a study's member runs execute: a registry of executors behind one call, `run_members`.

- `local` (default): in this process, one member after the other, exactly as before executors existed
  (`--workers 1`); with `--workers N` a pool of N spawned processes sharing the store (its claims keep two
  processes from running one config twice).
- `ray` (`analysis/runs/ray_executor.py`): each member is a Ray task on a local or existing cluster; the task
  runs in a scratch store and the driver writes the results back, so the store stays the one truth.

Every executor serves members that are finished in the store without running them, records a member that
fails as failed (with its error) and goes on with the others; the study then stops with `MembersFailed`,
so running the same command again runs only what is missing. The executor is a runtime choice: it is not
part of any config, so it never changes a run id.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

from analysis.core import precision
from analysis.core.config import ConfigBase
from analysis.core.errors import PruneScopeError
from analysis.core.precision import set_threads
from analysis.core.registry import Registry
from analysis.core.settings import device_name
from analysis.runs.experiment import RunContext, execute, run_id
from analysis.store.index import RunRecord, RunStore

OnDone = Callable[[int, RunRecord], None]


@dataclass(frozen=True)
class Member:
    """One run of a study: what to run, how it is labelled in progress messages, whether weights are kept."""

    kind: str
    config: ConfigBase
    label: str
    save_weights: bool = True


@dataclass(frozen=True)
class ExecutorOptions:
    workers: int = 1  # local: processes at once (1 = in this process, in order)
    device: str | None = None  # the device asked for (e.g. "auto", resolved where a run executes); None: the study's
    ray_address: str | None = None  # None: start a local Ray cluster
    ray_num_cpus: float = 1.0  # Ray resources reserved per member run
    ray_num_gpus: float = 0.0


class MembersFailed(PruneScopeError):
    """Some member runs of a study failed; the others finished and are kept in the store."""


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Executor:
    """Runs the member runs of a study. Subclasses implement `_map`; `map` adds the failure policy."""

    name = "?"

    def __init__(self, options: ExecutorOptions | None = None):
        self.options = options or ExecutorOptions()
        # submitted: member runs executed (here or as tasks); prerequisites: runs they need, run first (ray)
        self.stats = {"members": 0, "served": 0, "submitted": 0, "prerequisites": 0, "failed": 0}
        self.failures: list[tuple[str, str | None, str]] = []  # (label, run id, error)

    def map(self, members: Sequence[Member], ctx: RunContext, on_done: OnDone | None = None) -> list[RunRecord | None]:
        """Run every member (finished ones come from the store); `on_done(index, record)` as each finishes.

        Returns the records in member order; raises MembersFailed at the end if any member failed."""
        self.failures = []
        self.stats["members"] += len(members)
        # `auto` precision is resolved once, here, for the device the members run on: every member of a study uses
        # one precision, and the id the driver computes is the id the run gets wherever it executes
        where = self.precision_device(ctx)
        members = [replace(m, config=precision.resolve_config(m.config, where)) for m in members]
        records: list[RunRecord | None] = [None] * len(members)
        ctx.restart_pace()  # a new count: its time left comes from its own pace

        def done(index: int, record: RunRecord) -> None:
            records[index] = record
            if on_done is not None:
                on_done(index, record)

        self._map(list(members), ctx, done)
        if self.failures:
            lines = "; ".join(f"{label} [{rid or 'no run id'}]: {(err.splitlines() or [''])[0][:300]}"
                              for label, rid, err in self.failures[:5])
            lines += f"; and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
            raise MembersFailed(f"{len(self.failures)} of {len(members)} runs failed ({lines})",
                                fix="see `python -m analysis show RUN_ID` for each; fix the cause and run the same "
                                    "command again: finished runs are kept, only the missing ones run")
        return records

    def _map(self, members: list[Member], ctx: RunContext, done: OnDone) -> None:
        raise NotImplementedError

    def precision_device(self, ctx: RunContext) -> str:
        """The device `auto` precision is resolved for: the members' device."""
        return device_name(self.options.device or ctx.device)

    def close(self) -> None:
        """Release what the executor started (processes, a Ray cluster)."""

    # -- shared by every executor --------------------------------------------------------------

    def served(self, members: list[Member], store: RunStore, done: OnDone) -> list[tuple[int, Member, str]]:
        """Members finished in the store are passed to `done` at once; returns (index, member, run id) of the rest."""
        rest = []
        for index, member in enumerate(members):
            try:
                rid = run_id(member.kind, member.config)
            except Exception as exc:  # a missing data file or model: this member cannot even be named
                self.failed(store, member, None, error_text(exc))
                continue
            existing = store.get(rid)
            if existing is not None and existing.status == "done":
                self.stats["served"] += 1
                done(index, existing)
            else:
                rest.append((index, member, rid))
        return rest

    def failed(self, store: RunStore, member: Member, rid: str | None, error: str) -> None:
        """Record a member's failure; mark its run failed in the store unless that is already so."""
        self.stats["failed"] += 1
        self.failures.append((member.label, rid, error))
        if rid is None:
            return
        existing = store.get(rid)
        if existing is None:  # failed before it was claimed (a user error found while preparing it)
            from analysis.runs.experiment import EXPERIMENTS

            fields = EXPERIMENTS.get(member.kind)().describe(member.config)
            if store.claim(rid, member.kind, member.config.to_dict(), fields):
                store.fail(rid, error)
        elif existing.status == "running" and existing.row.get("pid") == os.getpid():
            store.fail(rid, error)


EXECUTORS: Registry[type[Executor]] = Registry("executor", ("analysis.runs",))
register = EXECUTORS.register


@register("local")
class LocalExecutor(Executor):
    """In this process in order (workers=1, the behaviour before executors), or a pool of spawned processes."""

    name = "local"

    def _map(self, members: list[Member], ctx: RunContext, done: OnDone) -> None:
        if self.options.workers <= 1:
            self._sequential(members, ctx, done)
        else:
            self._pool(members, ctx, done)

    def _sequential(self, members: list[Member], ctx: RunContext, done: OnDone) -> None:
        pending = self.served(members, ctx.store, done)  # finished ones first: they take no time
        for n, (index, member, _) in enumerate(pending):
            ctx.progress(n, len(pending), f"{member.label} ({n + 1}/{len(pending)})")
            try:
                outcome = execute(member.kind, member.config, ctx.store, device=ctx.device,
                                  save_weights=member.save_weights)
            except Exception as exc:
                rid = _run_id_or_none(member)
                self.failed(ctx.store, member, rid, error_text(exc))
                continue
            self.stats["served" if outcome.cached else "submitted"] += 1
            done(index, outcome.record)

    def _pool(self, members: list[Member], ctx: RunContext, done: OnDone) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pending = self.served(members, ctx.store, done)
        if not pending:
            return
        workers = min(self.options.workers, len(pending))
        threads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1) // workers)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_pool_init, initargs=(threads,))
        device = self.options.device or ctx.device
        futures = {pool.submit(_pool_execute, m.kind, m.config, str(ctx.store.root), device, m.save_weights): (i, m, rid)
                   for i, m, rid in pending}
        self.stats["submitted"] += len(futures)
        finished = 0
        try:
            while futures:
                ready, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in ready:
                    index, member, rid = futures.pop(future)
                    finished += 1
                    ctx.progress(finished, len(pending), f"{member.label} ({finished}/{len(pending)})")
                    self._collect(future, index, member, rid, ctx.store, done)
        except BaseException:
            _stop_pool(pool, ctx.store, [rid for _, _, rid in futures.values()])
            raise
        pool.shutdown(wait=True)

    def _collect(self, future: Any, index: int, member: Member, rid: str, store: RunStore, done: OnDone) -> None:
        try:
            error = future.result()
        except Exception as exc:  # the worker process died (killed, out of memory)
            error = f"the worker process running it stopped: {error_text(exc)}"
            _fail_if_orphaned(store, rid, error, "failed")
        record = store.get(rid)
        if error is None and record is not None and record.status == "done":
            done(index, record)
        else:
            self.failed(store, member, rid, error or f"it ended {record.status if record else 'unrecorded'}")


def _run_id_or_none(member: Member) -> str | None:
    try:
        return run_id(member.kind, member.config)
    except Exception:
        return None


def _pool_init(threads: int) -> None:
    """In each pool process: SIGTERM becomes KeyboardInterrupt (its run is marked interrupted); thread count."""
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("stopped: the study running this member was interrupted")

    signal.signal(signal.SIGTERM, stop)
    if "OMP_NUM_THREADS" not in os.environ:
        set_threads(threads=threads)


def _pool_execute(kind: str, config: ConfigBase, store_root: str, device: str, save_weights: bool) -> str | None:
    """Run one member in a pool process against the shared store; returns its error, or None."""
    try:
        execute(kind, config, RunStore(store_root), device=device, save_weights=save_weights)
    except Exception as exc:
        return error_text(exc)
    return None


def _fail_if_orphaned(store: RunStore, rid: str, error: str, status: str) -> None:
    """A run left 'running' by a process that is gone is marked failed/interrupted now (not after the timeout)."""
    from analysis.core.processes import process_alive

    record = store.get(rid)
    pid = record.row.get("pid") if record is not None else None
    if record is not None and record.status == "running" and pid and not process_alive(pid):
        store.fail(rid, error, status, pid=pid)


def _stop_pool(pool: Any, store: RunStore, rids: list[str]) -> None:
    """Interrupted: stop the pool's processes (SIGTERM) and mark their unfinished runs interrupted."""
    import time

    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 10
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
    for rid in rids:
        _fail_if_orphaned(store, rid, "stopped: the study running it was interrupted", "interrupted")


# -- which executor a study uses ------------------------------------------------------------------

_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("executor", default=None)


def current() -> Executor:
    """The executor of the running study (set by `using_executor`), else local and sequential."""
    return _CURRENT.get() or LocalExecutor()


def run_members(ctx: RunContext, members: Sequence[Member], on_done: OnDone | None = None) -> list[RunRecord | None]:
    """The one call a study makes: run its members with the current executor."""
    return current().map(members, ctx, on_done)


@contextlib.contextmanager
def using_executor(name: str, options: ExecutorOptions | None = None) -> Iterator[Executor]:
    """Within this block studies run their members with executor `name`; closed (cluster stopped) at the end."""
    executor = EXECUTORS.get(name)(options)
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)
        executor.close()
