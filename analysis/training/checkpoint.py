"""Checkpoints of the training loop, so a killed run continues where it stopped with the same result.

A checkpoint is one folder under the run's `checkpoints/`:
  model.safetensors   the weights (the model's state_dict, parametrisations included)
  state.safetensors   every other tensor: optimizer moments, hook masks and generators, RNG states, best epoch
  meta.json           everything else: identity (run id, kind, code version, config), step, epoch, position in
                      the epoch, the data order, counters, epoch metrics, optimizer/scheduler/hook settings
It is written to a temporary folder (each file fsynced), renamed into place, then named by `latest` (a JSON
pointer replaced atomically); older ones are removed. A kill at any moment leaves the previous checkpoint
whole, or none. Nothing is unpickled: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from analysis.core.errors import StoreError
from analysis.store.index import write_atomic

FORMAT = 1  # bumped when the layout changes; a checkpoint of another format is refused
POINTER = "latest"
FILES = ("model.safetensors", "state.safetensors", "meta.json")
# An epoch-boundary checkpoint is skipped when the last one is younger than this: a crash then loses under a
# minute of work, and runs with epochs of a few steps (small data-scale sizes) are not slowed by writes.
EPOCH_MIN_SECONDS = 60.0


class CheckpointError(StoreError):
    """A checkpoint is missing, unreadable, or was written for another run, config or code version."""


@dataclass
class Progress:
    """The loop's counters besides step and epoch (those live in TrainState)."""

    position: int = 0  # batches of the current epoch already trained
    seen: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    epoch_metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Found:
    """A complete checkpoint on disk and its meta.json."""

    folder: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def describe(self) -> dict[str, Any]:
        return {"checkpoint": self.folder.name, "step": self.step, "epoch": self.meta["epoch"],
                "position": self.meta["progress"]["position"], "written": self.meta.get("created")}


# -- packing nested state into JSON + named tensors ----------------------------------------


def pack(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of `obj` where each tensor is replaced by a reference into `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, Mapping):
        return {str(k): pack(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [pack(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def unpack(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of `pack` (tuples come back as lists)."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: unpack(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA when present) generator states."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    out: dict[str, Any] = {"python": [version, list(words), gauss], "torch": torch.get_rng_state(),
                           "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def order_digest(batches: Sequence[np.ndarray]) -> str:
    """Identifies an epoch's batch order (which examples, in which batches)."""
    sizes = np.array([len(b) for b in batches], dtype=np.int64)
    flat = np.concatenate(batches).astype(np.int64) if batches else np.zeros(0, np.int64)
    return hashlib.sha256(sizes.tobytes() + flat.tobytes()).hexdigest()


# -- files ---------------------------------------------------------------------------------


def _own(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that share no storage (safetensors refuses shared or partial views)."""
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        storage = t.untyped_storage()
        if t.numel() and (storage.data_ptr() in seen or t.storage_offset() or storage.nbytes() != t.numel() * t.element_size()):
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(_own(tensors), str(path))
    _fsync(path)


def _write_json(path: Path, obj: Any) -> None:
    path.write_bytes(json.dumps(obj, sort_keys=True).encode())
    _fsync(path)


def write_checkpoint(root: Path, name: str, tensor_files: Mapping[str, Mapping[str, torch.Tensor]],
                     meta: Mapping[str, Any]) -> Path:
    """Write a complete checkpoint folder (tmp folder, fsync, rename), point `latest` at it, drop older ones."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        for file, tensors in tensor_files.items():
            _write_tensors(tmp / file, tensors)
        _write_json(tmp / "meta.json", meta)  # last: its presence marks a folder whose files were all written
        _fsync(tmp)
        os.replace(tmp, root / name)
        _fsync(root)
        write_atomic(root / POINTER, json.dumps({"name": name}).encode())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for other in root.iterdir():  # keep only the latest (and remove folders a killed writer left half-written)
        if other.name not in (name, POINTER):
            shutil.rmtree(other, ignore_errors=True) if other.is_dir() else other.unlink(missing_ok=True)
    return root / name


def _read(folder: Path) -> Found | None:
    if folder.name.startswith(".") or not all((folder / f).is_file() for f in FILES):
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return Found(folder, meta) if isinstance(meta, dict) and "step" in meta else None


def latest(root: Path) -> Found | None:
    """The newest complete checkpoint under `root` (the one `latest` names, else the furthest along), or None."""
    if not root.is_dir():
        return None
    try:
        found = _read(root / json.loads((root / POINTER).read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        found = None
    if found is not None:
        return found
    complete = [f for f in (_read(p) for p in root.iterdir() if p.is_dir()) if f is not None]
    return max(complete, key=lambda f: (f.meta.get("epoch", 0), f.step), default=None)


def check(found: Found, identity: Mapping[str, Any]) -> None:
    """Refuse a checkpoint of another format, run, config or code version."""
    if found.meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {found.folder} has format {found.meta.get('format')}, this code reads "
                              f"format {FORMAT}", fix="restart the run from scratch")
    theirs = found.meta.get("identity", {})
    for key, what in (("run_id", "run"), ("kind", "kind of run"), ("code_version", "code version")):
        if theirs.get(key) != identity.get(key):
            raise CheckpointError(f"checkpoint {found.folder} was written by another {what} "
                                  f"({theirs.get(key)!r}, this is {identity.get(key)!r})",
                                  fix="restart the run from scratch")
    if theirs.get("config") != json.loads(json.dumps(identity.get("config"))):
        raise CheckpointError(f"checkpoint {found.folder} was written for another config",
                              fix="restart the run from scratch")


def find(root: Path, identity: Mapping[str, Any]) -> Found | None:
    """The latest checkpoint if it belongs to this run (CheckpointError if it does not), or None."""
    found = latest(root)
    if found is not None:
        check(found, identity)
    return found


def discard(root: Path) -> None:
    """Remove a run's checkpoints (it finished, or starts again from scratch)."""
    shutil.rmtree(root, ignore_errors=True)


def truncate_log(path: Path, size: int) -> None:
    """Cut metrics.jsonl back to what was logged when the checkpoint was written (the rest is redone)."""
    if path.is_file() and path.stat().st_size > size:
        os.truncate(path, size)


# -- the loop's side -----------------------------------------------------------------------


class Checkpointer:
    """Saves the training loop's complete state, and restores it when the run resumes.

    `every` > 0 adds a checkpoint each `every` optimizer steps to the one at each epoch boundary (epoch
    boundaries closer than `min_seconds` to the last checkpoint are skipped; default EPOCH_MIN_SECONDS)."""

    def __init__(self, root: Path, identity: Mapping[str, Any], every: int = 0, resume: Found | None = None,
                 log_path: Path | None = None, min_seconds: float | None = None):
        self.root, self.identity, self.every, self.resume, self.log_path = root, dict(identity), every, resume, log_path
        self.min_seconds = EPOCH_MIN_SECONDS if min_seconds is None else min_seconds
        self.last_saved = time.monotonic()

    def attach(self, state: Any, scheduler: Any, hooks: Sequence[Any], best: Any,
               order: Callable[[int], list[np.ndarray]]) -> None:
        """What the loop will save: its TrainState, LR schedule, hooks, best-epoch keeper and data order."""
        self.state, self.scheduler, self.hooks, self.best, self.order = state, scheduler, list(hooks), best, order
        self.last_saved = time.monotonic()

    def due(self, step: int) -> bool:
        """A step checkpoint is due (never at the last step: the run is about to finish)."""
        return self.every > 0 and step % self.every == 0 and step < self.state.total_steps

    def epoch_due(self) -> bool:
        """An epoch-boundary checkpoint is due (the loop never asks after the last epoch)."""
        return time.monotonic() - self.last_saved >= self.min_seconds

    def save(self, progress: Progress) -> Path:
        state, tensors = self.state, {}
        order = self.order(state.epoch)
        meta = {
            "format": FORMAT, "identity": self.identity, "torch": torch.__version__, "created": time.time(),
            "step": state.step, "epoch": state.epoch, "total_steps": state.total_steps, "progress": asdict(progress),
            "data_order": {"epoch": state.epoch, "batches": len(order), "position": progress.position,
                           "sha256": order_digest(order)},
            "log_bytes": self.log_path.stat().st_size if self.log_path and self.log_path.is_file() else 0,
            "optimizer": pack(_optimizer_state(state.optimizer), "optimizer", tensors),
            "scheduler": pack(self.scheduler.state_dict(), "scheduler", tensors),
            "hooks": [{"class": type(h).__qualname__, "state": pack(h.state_dict(), f"hooks.{i}", tensors)}
                      for i, h in enumerate(self.hooks)],
            "best": pack(_best_state(self.best), "best", tensors),
            "rng": pack(rng_state(), "rng", tensors),
        }
        name = f"step-{state.step:09d}-epoch-{state.epoch:04d}-{uuid.uuid4().hex[:8]}"
        folder = write_checkpoint(self.root, name, {"model.safetensors": state.model.state_dict(),
                                                    "state.safetensors": tensors}, meta)
        self.last_saved = time.monotonic()
        return folder

    def restore(self) -> Progress | None:
        """Load the checkpoint this run resumes from into the loop (None when starting fresh)."""
        if self.resume is None:
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        found, meta, state = self.resume, self.resume.meta, self.state
        check(found, self.identity)
        self._check_shape(meta)
        try:
            weights = load_file(str(found.folder / "model.safetensors"))
            tensors = load_file(str(found.folder / "state.safetensors"))
            state.model.load_state_dict(weights)
            _load_optimizer(state.optimizer, unpack(meta["optimizer"], tensors))
            self.scheduler.load_state_dict(unpack(meta["scheduler"], tensors))
            for hook, saved in zip(self.hooks, meta["hooks"]):
                hook.load_state_dict(unpack(saved["state"], tensors))
            _load_best(self.best, unpack(meta["best"], tensors))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(f"checkpoint {found.folder} cannot be loaded ({exc})",
                                  fix="restart the run from scratch") from exc
        state.step, state.epoch = meta["step"], meta["epoch"]
        set_rng_state(unpack(meta["rng"], tensors))  # last: nothing after this may draw random numbers
        return Progress(**meta["progress"])

    def _check_shape(self, meta: Mapping[str, Any]) -> None:
        """The same loop: step budget, hooks and data order as when the checkpoint was written."""
        names = [type(h).__qualname__ for h in self.hooks]
        saved = [h["class"] for h in meta["hooks"]]
        order = meta["data_order"]
        problems = [f"{what} differ ({a} vs {b})" for what, a, b in (
            ("total steps", meta["total_steps"], self.state.total_steps), ("training hooks", saved, names),
            ("data orders", order["sha256"], order_digest(self.order(order["epoch"]))))
            if a != b]
        if problems:
            raise CheckpointError(f"checkpoint {self.resume.folder} does not fit this run: {'; '.join(problems)}",
                                  fix="restart the run from scratch")


def _optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    sd = optimizer.state_dict()
    return {"state": {str(k): v for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """JSON turned tuples (betas) into lists and int keys into strings: give them back their types."""
    groups = []
    for current, group in zip(optimizer.param_groups, saved["param_groups"]):
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in group.items()})
    state = {int(k): v for k, v in saved["state"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _best_state(best: Any) -> dict[str, Any] | None:
    if best is None:
        return None
    return {"best": best.best, "best_epoch": best.best_epoch, "bad_epochs": best.bad_epochs, "state": best.state}


def _load_best(best: Any, saved: Mapping[str, Any] | None) -> None:
    if best is None or saved is None:
        return
    score = saved["best"]  # a list of floats; checkpoints written before select_on hold one float
    best.best = list(score) if isinstance(score, (list, tuple)) else [score]
    best.best_epoch, best.bad_epochs = saved["best_epoch"], saved["bad_epochs"]
    best.state = dict(saved["state"]) if saved["state"] is not None else None
