"""Linear CKA per layer against the original pre-trained model and the dense fine-tuned teacher,
on a seeded sample of WikiText-2 sentences (the probe run's seed; Kornblith et al., 2019)."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.core.config import DataConfig
from analysis.data.tasks import load_split, sample_indices
from analysis.methods.probes.base import PROBES, Probe, ProbeTarget
from analysis.methods.probes.features import text_features

PROBE_SENTENCES = 512


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred features (examples in rows)."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    return float(cross / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")))


def probe_texts(seed: int = 0) -> list[str]:
    """`PROBE_SENTENCES` WikiText-2 sentences drawn under `seed` (the probe run's), in corpus order."""
    texts = load_split(DataConfig(dataset="wikitext2"), "train").texts[0]
    return [texts[i] for i in sample_indices(len(texts), PROBE_SENTENCES, seed)]


def reference(target: ProbeTarget, which: str) -> ProbeTarget | None:
    assert target.load is not None, "a probe target is loaded by runs.probe.load_target"
    if which == "pretrained":
        return target.load("default")
    return target.load(target.teacher) if target.teacher else None


@PROBES.register("cka")
class CKA(Probe):
    def run(self, target: ProbeTarget) -> dict[str, Any]:
        texts = probe_texts(target.seed)
        mine = text_features(target, "cka-wikitext2", texts)
        out: dict[str, Any] = {"sentences": len(texts), "seed": target.seed}
        for which in ("pretrained", "teacher"):
            ref = reference(target, which)
            if ref is None:
                out[which] = None
                continue
            theirs = text_features(ref, "cka-wikitext2", texts)
            layers = min(len(mine), len(theirs))  # a model with dropped layers is compared layer by layer
            out[which] = [linear_cka(mine[i], theirs[i]) for i in range(layers)]
        return out
