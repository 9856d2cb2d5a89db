"""What-if pruning for both shells: sessions kept loaded between edits, edits evaluated, an edit made a real run."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from analysis.core.errors import ConfigError
from analysis.models.arch import MODULE_TYPES  # noqa: F401
from analysis.reports.whatif import CRITERIA, SAMPLE_SIZE, SCOPES, Edit, WhatIf, parse_ffn, parse_heads, parse_layers  # noqa: F401
from analysis.runs.heads import stored_importance
from analysis.runs.queue import JobQueue, Submission
from analysis.service.runs import transformer_runs_with_weights
from analysis.store.index import RunStore

MAX_SESSIONS = 3  # models kept loaded (each ~100 MB for the default model)
_sessions: OrderedDict[tuple[str, str, str], WhatIf] = OrderedDict()
_lock = threading.Lock()


def session(store: RunStore, run_id: str, precision: str = "auto") -> WhatIf:
    """The loaded session of a run (loaded on first use, the least recently used dropped beyond MAX_SESSIONS)."""
    key = (str(store.root), run_id, precision)
    with _lock:
        if key in _sessions:
            _sessions.move_to_end(key)
            return _sessions[key]
    loaded = WhatIf(store, run_id, precision)
    with _lock:
        _sessions[key] = loaded
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)
    return loaded


def candidates(store: RunStore) -> list[dict[str, Any]]:
    """Finished fine-tune and prune runs of a transformer that kept their weights: what the explorer can edit."""
    return transformer_runs_with_weights(store)


def least_important_heads(store: RunStore, run_id: str, k: int, by: str = "michel") -> tuple[tuple[int, int], ...]:
    """The k heads with the lowest stored importance (a finished `heads` run of this model), as (layer, head)."""
    import numpy as np

    stored = stored_importance(store, run_id)
    if stored is None:
        raise ConfigError(f"run {run_id} has no stored head importance",
                          fix=f"compute it: python -m analysis heads --target {run_id}")
    grid = stored.get(by)
    if by not in ("michel", "ig") or not grid:
        raise ConfigError(f"the stored head importance of {run_id} has no {by!r} scores", fix="use michel or ig")
    values = np.array([[np.inf if v is None else v for v in row] for row in grid], dtype=float)  # None: removed
    order = np.argsort(values, axis=None, kind="stable")[:k]
    return tuple(sorted((int(i // values.shape[1]), int(i % values.shape[1])) for i in order))


def retrain(store: RunStore, run_id: str, edit: Edit) -> Submission:
    """Queue the edit as a real run: its masks fixed, the model retrained (a `prune` run with `--masks`), started
    from the edited run's dense fine-tune."""
    from safetensors.torch import save_file

    from analysis.methods.pruning import PruneConfig

    record = store.require(run_id)
    if record.kind != "finetune":
        raise ConfigError(f"run {run_id} is a {record.kind} run; retraining an edit starts from a dense fine-tune",
                          fix="explore a fine-tune run to turn an edit into a run")
    masks = session(store, run_id).masks(edit)
    folder = Path(store.root) / "whatif"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}-{edit.key()}.safetensors"
    save_file({k: v.to(torch.uint8).contiguous() for k, v in masks.items()}, str(path))
    sparsity = float(sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values()))
    config = PruneConfig.from_dict({**{k: record.config[k] for k in ("model", "data", "train", "seed")},
                                    "method": "magnitude", "sparsity": round(min(sparsity, 0.9999), 4),
                                    "options": {"masks": str(path)}}, where=f"the edit of run {run_id} as a run")
    return JobQueue(store).submit("prune", config)  # (submit starts a worker when none is running)
