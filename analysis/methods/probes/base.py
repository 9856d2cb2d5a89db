"""The probe registry and what every probe receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from analysis.core.registry import Registry
from analysis.store.index import RunStore


@dataclass
class ProbeTarget:
    """A model to probe: a stored run's weights, or the original pre-trained model ('default')."""

    name: str  # run id or 'default'
    model: nn.Module
    tokenizer: Any
    record: dict[str, Any]  # the run's record ({} for the pre-trained model)
    store: RunStore
    device: torch.device
    cache: dict[str, Any] = field(default_factory=dict)  # embeddings shared by the probes of one call
    task: str | None = None  # the task given for a target that has none of its own (the pre-trained model)
    precision: str = "fp32"  # resolved: the forward passes' autocast (features, fidelity)
    seed: int = 0  # the probe run's: which probe sentences are drawn (CKA, MLM)

    @property
    def teacher(self) -> str | None:
        """The dense fine-tuned reference: a distilled run's own teacher, else (any pruning run) the dense model
        fine-tuned with the same model, data and training settings, if the store has it (never trained here)."""
        own = self.record.get("summary", {}).get("teacher") or self.record.get("teacher")
        return own or dense_reference(self.store, self.record)

    @property
    def dataset(self) -> str | None:
        return self.record.get("config", {}).get("data", {}).get("dataset") or self.task


def dense_reference(store: RunStore, record: dict[str, Any]) -> str | None:
    """The finished dense fine-tune a pruning run's `--teacher auto` resolves to, or None."""
    if record.get("kind") != "prune":
        return None
    from analysis.runs.experiment import run_id
    from analysis.methods.pruning.base import PruneConfig
    from analysis.runs.prune import teacher_config

    reference = run_id("finetune", teacher_config(PruneConfig.from_dict(record["config"])))
    rec = store.get(reference)
    return reference if rec is not None and rec.status == "done" else None


class Probe:
    """One kind of knowledge measured on a model. `not_applicable` returns the reason, or None."""

    def not_applicable(self, target: ProbeTarget) -> str | None:
        return None

    def run(self, target: ProbeTarget) -> dict[str, Any]:
        raise NotImplementedError


PROBES: Registry[type[Probe]] = Registry("probe")
