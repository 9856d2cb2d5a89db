"""The probe registry and what every probe receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
    dense_reference: str | None = None  # a pruning run's `--teacher auto` dense fine-tune, if stored (runs.probe)
    load: Callable[[str], "ProbeTarget"] | None = None  # loads another model ('default', a teacher) like this one

    @property
    def teacher(self) -> str | None:
        """The dense fine-tuned reference: a distilled run's own teacher, else (any pruning run) the dense model
        fine-tuned with the same model, data and training settings, if the store has it (never trained here)."""
        own = self.record.get("summary", {}).get("teacher") or self.record.get("teacher")
        return own or self.dense_reference

    @property
    def dataset(self) -> str | None:
        return self.record.get("config", {}).get("data", {}).get("dataset") or self.task


class Probe:
    """One kind of knowledge measured on a model. `not_applicable` returns the reason, or None."""

    def not_applicable(self, target: ProbeTarget) -> str | None:
        return None

    def run(self, target: ProbeTarget) -> dict[str, Any]:
        raise NotImplementedError


PROBES: Registry[type[Probe]] = Registry("probe", ("analysis.methods.probes",))
