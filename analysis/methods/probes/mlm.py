"""Language-model knowledge: masked-token accuracy and pseudo-perplexity on WikiText-2 sentences, for
checkpoints that carry an MLM head. A model without one gets 'not applicable', never a number from a
randomly initialised head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.core.precision import autocast
from analysis.methods.probes.base import PROBES, Probe, ProbeTarget
from analysis.models.loading import default_model_path


def has_mlm_head(folder: Path) -> bool:
    from safetensors import safe_open

    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as fh:
            if any(k.startswith(("cls.predictions", "lm_head", "vocab_projector", "generator_lm_head"))
                   for k in fh.keys()):
                return True
    return False


SENTENCES = 200
MASK_RATE = 0.15


def probe_folder(target: ProbeTarget) -> Path:
    if target.name == "default":
        return default_model_path()
    if Path(target.name).is_dir():
        return Path(target.name)
    return target.store.run_dir(target.name) / "model"


@PROBES.register("mlm")
class MaskedLM(Probe):
    def not_applicable(self, target: ProbeTarget) -> str | None:
        folder = probe_folder(target)
        if not has_mlm_head(folder):
            name = "the embedded default, all-MiniLM-L6-v2" if target.name == "default" else str(folder)
            return f"the checkpoint ({name}) carries no MLM head, so masked-token accuracy is undefined"
        return None

    @torch.no_grad()
    def run(self, target: ProbeTarget) -> dict[str, Any]:
        from transformers import AutoModelForMaskedLM

        from analysis.methods.probes.cka import probe_texts

        model = AutoModelForMaskedLM.from_pretrained(str(probe_folder(target)), use_safetensors=True,
                                                     trust_remote_code=False).to(target.device).eval()
        tok = target.tokenizer
        gen = torch.Generator().manual_seed(0)
        correct = total = 0
        nll = 0.0
        for text in probe_texts(target.seed)[:SENTENCES]:
            ids = tok(text, truncation=True, max_length=128, return_tensors="pt")["input_ids"]
            inner = torch.arange(1, ids.shape[1] - 1)
            chosen = inner[torch.rand(len(inner), generator=gen) < MASK_RATE]
            if len(chosen) == 0:
                continue
            masked = ids.clone()
            masked[0, chosen] = tok.mask_token_id
            with autocast(target.device, target.precision):
                logits = model(input_ids=masked.to(target.device)).logits[0, chosen].float().cpu()
            gold = ids[0, chosen]
            correct += int((logits.argmax(-1) == gold).sum())
            nll += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
            total += len(chosen)
        return {"masked_token_accuracy": correct / max(1, total), "pseudo_perplexity": float(np.exp(nll / max(1, total))),
                "masked_tokens": total, "sentences": SENTENCES}
