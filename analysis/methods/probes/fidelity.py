"""Task knowledge kept: agreement with, and KL divergence from, the dense fine-tuned teacher on the dev set."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.methods.probes.base import PROBES, Probe, ProbeTarget


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@PROBES.register("fidelity")
class Fidelity(Probe):
    def not_applicable(self, target: ProbeTarget) -> str | None:
        if not target.teacher:
            return ("no dense fine-tuned model to compare with: only a pruning run has one (its teacher, or the dense "
                    "fine-tune with its model, data and training settings, once that is in the store)")
        return None

    def run(self, target: ProbeTarget) -> dict[str, Any]:
        mine = target.store.load_arrays(target.name, "predictions")
        theirs = target.store.load_arrays(target.teacher, "predictions")  # type: ignore[arg-type]
        order_a, order_b = np.argsort(mine["indices"]), np.argsort(theirs["indices"])
        if not np.array_equal(mine["indices"][order_a], theirs["indices"][order_b]):
            return {"error": "the model and its teacher were evaluated on different examples"}
        a, b = mine["outputs"][order_a], theirs["outputs"][order_b]
        if a.shape[-1] == 1:  # regression: agreement is not defined, report the mean squared difference
            return {"mse_to_teacher": float(np.mean((a - b) ** 2)), "examples": len(a)}
        p, q = softmax(b.astype(np.float64)), softmax(a.astype(np.float64))
        kl = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=-1)))
        return {"agreement": float((a.argmax(-1) == b.argmax(-1)).mean()), "kl_teacher_to_model": kl,
                "examples": len(a), "reference": target.teacher}
