"""Explaining one input: attention maps (eager attention, only when asked) and token attributions (captum's
layer integrated gradients on the embeddings), for one model or two side by side (e.g. dense vs pruned).

Every function leaves the model it is given unchanged: attention maps run on an eager copy, and the
train/eval flag and `requires_grad` are restored.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.core.errors import ConfigError
from analysis.data.tokens import accepts_token_types
from analysis.models import loading as models
from analysis.models.arch import Arch
from analysis.models.heads import frozen_parameters, kept_heads


class TruncationWarning(UserWarning):
    """An input was longer than the model accepts and its end was cut."""


@dataclass
class EncodedText:
    batch: dict[str, torch.Tensor]  # one example: input_ids, attention_mask (, token_type_ids)
    tokens: list[str]
    cut: int  # tokens cut from the end (0: the text fitted)


def token_limit(model: nn.Module, tokenizer: Any, max_length: int | None = None) -> int:
    """The longest input to use: the model's position limit, narrowed by `max_length` when given."""
    limits = [x for x in (max_length, models.max_tokens(model)) if x]
    if not limits:
        raise ConfigError("the model declares no maximum input length", fix="pass max_length")
    return int(min(limits))


def encode_text(model: nn.Module, tokenizer: Any, text: str, max_length: int | None = None) -> EncodedText:
    """Tokenise one text for `model`; a text longer than it accepts is truncated with a TruncationWarning."""
    if not text or not text.strip():
        raise ConfigError("the text to explain is empty", fix='pass some text, e.g. --text "a great film"')
    limit = token_limit(model, tokenizer, max_length)
    with models.quiet_transformers():  # the tokenizer's own "sequence too long" notice: ours says more
        full = len(tokenizer(text, truncation=False)["input_ids"])
        enc = tokenizer(text, truncation=True, max_length=limit, return_tensors="pt")
    cut = max(0, full - limit)
    if cut:
        warnings.warn(TruncationWarning(
            f"the text has {full} tokens but the model accepts at most {limit}: the last {cut} tokens were cut "
            f"(explain a shorter passage to see all of it)"), stacklevel=2)
    keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if accepts_token_types(model) else [])
    device = next(model.parameters()).device
    batch = {k: enc[k].to(device) for k in keys if k in enc}
    return EncodedText(batch, tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()), cut)


def eager_copy(model: nn.Module) -> nn.Module:
    """The model itself if it already runs eager attention, else a copy that does (SDPA returns no weights)."""
    if getattr(model.config, "_attn_implementation", None) == "eager":
        return model
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    return eager.eval()


@dataclass
class AttentionMaps:
    tokens: list[str]
    maps: list[np.ndarray]  # per layer: (heads in that layer, tokens, tokens), rows attend to columns
    head_ids: list[list[int]]  # per layer: the original index of each remaining head
    cut: int = 0

    def head(self, layer: int, head: int) -> np.ndarray:
        """The (tokens, tokens) map of original head `head` in layer `layer`."""
        if not 0 <= layer < len(self.maps):
            raise ConfigError(f"layer {layer} does not exist", fix=f"use a layer in 0..{len(self.maps) - 1}")
        if head not in self.head_ids[layer]:
            raise ConfigError(f"head {head} of layer {layer} is not in this model (pruned or out of range)",
                              fix=f"use one of {self.head_ids[layer]}")
        return self.maps[layer][self.head_ids[layer].index(head)]


@torch.no_grad()
def attention_maps(model: nn.Module, tokenizer: Any, text: str, max_length: int | None = None,
                   head_ids: list[list[int]] | None = None) -> AttentionMaps:
    """Softmax attention of every head of every layer on `text` (an eager copy is made when needed)."""
    enc = encode_text(model, tokenizer, text, max_length)
    eager = eager_copy(model)
    was_training = eager.training
    eager.eval()
    out = eager(**enc.batch, output_attentions=True)
    eager.train(was_training)
    maps = [a[0].float().cpu().numpy() for a in out.attentions]
    ids = head_ids or [list(range(n)) for n in kept_heads(model)]
    return AttentionMaps(enc.tokens, maps, ids, enc.cut)


@dataclass
class TokenAttribution:
    tokens: list[str]
    attributions: np.ndarray  # (tokens,): summed over the embedding dimension
    delta: float  # captum's convergence delta: sum(attributions) - (F(input) - F(baseline))
    target: int  # the output (class) explained
    output: float  # F(input): the target logit
    baseline_output: float  # F(baseline): the same with every non-special token replaced by padding
    probabilities: list[float]
    cut: int = 0


def token_attributions(model: nn.Module, tokenizer: Any, text: str, target: int | None = None, n_steps: int = 50,
                       max_length: int | None = None, internal_batch_size: int | None = 25) -> TokenAttribution:
    """Layer integrated gradients on the embedding layer's output, from a baseline keeping only special tokens."""
    from captum.attr import LayerIntegratedGradients

    enc = encode_text(model, tokenizer, text, max_length)
    ids = enc.batch["input_ids"]
    rest = {k: v for k, v in enc.batch.items() if k != "input_ids"}
    special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
                           dtype=torch.bool, device=ids.device)
    baseline = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id or 0))

    def forward(input_ids: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, **dict(zip(rest, values))).logits.float()

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, base_logits = forward(ids, *rest.values()), forward(baseline, *rest.values())
        target = _check_target(target, logits)
        with frozen_parameters(model):
            attr, delta = LayerIntegratedGradients(forward, Arch(model).base.embeddings).attribute(
                ids, baselines=baseline, target=target, additional_forward_args=tuple(rest.values()),
                n_steps=n_steps, internal_batch_size=internal_batch_size, return_convergence_delta=True)
    finally:
        model.train(was_training)
    probs = logits.softmax(-1)[0].tolist() if logits.shape[-1] > 1 else logits[0].tolist()
    return TokenAttribution(enc.tokens, attr.sum(-1)[0].detach().cpu().double().numpy(), float(delta[0]), target,
                            float(logits[0, target]), float(base_logits[0, target]), probs, enc.cut)


def _check_target(target: int | None, logits: torch.Tensor) -> int:
    if target is None:
        return int(logits[0].argmax())
    if not 0 <= target < logits.shape[-1]:
        raise ConfigError(f"target class {target} does not exist", fix=f"use 0..{logits.shape[-1] - 1}")
    return int(target)


@dataclass
class Explained:
    """A model to explain: a name for display, the model, its tokenizer and its heads' original indices."""

    name: str
    model: nn.Module
    tokenizer: Any
    head_ids: list[list[int]] | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "the classifier head is untrained"


def explain(item: Explained, text: str, layer: int | None = None, head: int | None = None,
            target: int | None = None, n_steps: int = 50, max_length: int | None = None) -> dict[str, Any]:
    """Attention (every layer and head, one layer, or one head) and token attributions of one model on `text`."""
    maps = attention_maps(item.model, item.tokenizer, text, max_length, item.head_ids)
    attr = token_attributions(item.model, item.tokenizer, text, target, n_steps, max_length)
    if layer is not None and not 0 <= layer < len(maps.maps):
        raise ConfigError(f"layer {layer} does not exist", fix=f"use a layer in 0..{len(maps.maps) - 1}")
    if head is not None and layer is None:
        raise ConfigError("a head was given without its layer", fix="pass the layer too (--layer L --head H)")
    num_heads = Arch(item.model).num_heads
    if head is not None and not 0 <= head < num_heads:
        raise ConfigError(f"head {head} does not exist", fix=f"use a head in 0..{num_heads - 1}")
    layers = range(len(maps.maps)) if layer is None else [layer]
    attention: dict[str, dict[str, list | None]] = {}  # a removed (pruned) head maps to None
    for l in layers:
        heads = maps.head_ids[l] if head is None else [head]
        attention[str(l)] = {str(h): maps.head(l, h).round(6).tolist() if h in maps.head_ids[l] else None
                             for h in heads}
    return {"name": item.name, "tokens": attr.tokens, "truncated_tokens": attr.cut, "notes": item.notes,
            "prediction": attr.probabilities, "target": attr.target, "attention": attention,
            "head_ids": maps.head_ids, "attributions": attr.attributions.round(8).tolist(),
            "attribution_sum": float(attr.attributions.sum()), "output": attr.output,
            "baseline_output": attr.baseline_output, "delta": attr.delta, "n_steps": n_steps}


def explain_side_by_side(left: Explained, right: Explained, text: str, layer: int | None = None,
                         head: int | None = None, target: int | None = None, n_steps: int = 50,
                         max_length: int | None = None) -> dict[str, Any]:
    """Both models on the same text; both explain the same class (the left model's prediction unless given)."""
    classes = [int(m.model.config.num_labels) for m in (left, right)]
    if classes[0] != classes[1]:
        raise ConfigError(f"{left.name} predicts {classes[0]} classes, {right.name} {classes[1]}",
                          fix="compare two models of the same task")
    a = explain(left, text, layer, head, target, n_steps, max_length)
    b = explain(right, text, layer, head, a["target"], n_steps, max_length)
    return {"text": text, "target": a["target"], "left": a, "right": b}
