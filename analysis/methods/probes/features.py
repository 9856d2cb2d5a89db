"""Frozen features for probes: mean-pooled hidden states of every layer, extracted once per
(model, text set) and cached on disk, so all probes share them."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from analysis.core.precision import autocast
from analysis.data.tokens import accepts_token_types, cache_dir, iterate, tokenise
from analysis.methods.probes.base import ProbeTarget
from analysis.models import loading as models
from analysis.training.distill import Capture


def text_features(target: ProbeTarget, name: str, texts: list[str], max_length: int = 128,
                  batch_size: int = 128) -> np.ndarray:
    """(layers + 1, n, hidden) mean-pooled hidden states (embedding output first), float32."""
    limit = models.max_tokens(target.model)
    if limit is not None and max_length > limit:
        warnings.warn(f"probe texts are truncated to {limit} tokens, the longest {target.name} accepts")
        max_length = limit
    key = hashlib.sha256("|".join([model_key(target), name, str(max_length), str(len(texts)), target.precision,
                                   hashlib.sha256("\n".join(texts).encode()).hexdigest()]).encode()).hexdigest()[:24]
    if key in target.cache:
        return target.cache[key]
    path = Path(cache_dir()).parent / "features" / f"{key}.npy"
    if path.is_file():
        feats = np.load(path, allow_pickle=False)
    else:
        feats = _extract(target, texts, max_length, batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, feats)
        os.replace(tmp, path)
    target.cache[key] = feats
    return feats


def model_key(target: ProbeTarget) -> str:
    return target.name if target.name != "default" else "default-pretrained"


@torch.no_grad()
def _extract(target: ProbeTarget, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    from analysis.data.tasks import DatasetCard, TextDataset

    card = DatasetCard("probe", "probe", "unlabeled", ("text",), None, None, (), {}, "train")
    ds = TextDataset(card, "probe", [texts], None, "probe", "probe")
    enc = tokenise(ds, target.tokenizer, max_length)
    model = target.model.to(target.device).eval()
    capture = Capture(model)
    out = None
    try:
        for idx, batch in iterate(enc, batch_size, target.tokenizer.pad_token_id or 0, accepts_token_types(model)):
            capture.clear()
            batch = {k: v.to(target.device) for k, v in batch.items()}
            with autocast(target.device, target.precision):
                model(**batch)
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = [((h.float() * mask).sum(1) / mask.sum(1)).cpu().numpy() for h in capture.hidden]
            if out is None:
                out = np.zeros((len(pooled), len(texts), pooled[0].shape[-1]), dtype=np.float32)
            for layer, values in enumerate(pooled):
                out[layer, idx] = values
    finally:
        capture.remove()
    return out
