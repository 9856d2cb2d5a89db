"""One adapter that says where the layers, attention heads, FFNs and embeddings live in each family.

Every method that touches a model's structure (pruning, head gates, Child-Tuning's encoder scope,
distillation hooks) asks the adapter instead of hard-coding module names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from analysis.core.errors import ModelError

# The six weight matrices of a transformer layer, in the order pruning reports them.
MODULE_TYPES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")


@dataclass(frozen=True)
class FamilySpec:
    """Module paths of one model family (relative to the base model, then to one layer)."""

    base: str
    layers: str
    query: str
    key: str
    value: str
    attn_out: str
    ffn_in: str
    ffn_out: str
    heads_attr: str = "num_attention_heads"
    hidden_attr: str = "hidden_size"
    ffn_attr: str = "intermediate_size"
    layers_attr: str = "num_hidden_layers"


_BERT_LIKE = dict(
    layers="encoder.layer", query="attention.self.query", key="attention.self.key",
    value="attention.self.value", attn_out="attention.output.dense", ffn_in="intermediate.dense",
    ffn_out="output.dense",
)
FAMILIES: dict[str, FamilySpec] = {
    "bert": FamilySpec(base="bert", **_BERT_LIKE),
    "roberta": FamilySpec(base="roberta", **_BERT_LIKE),
    "electra": FamilySpec(base="electra", **_BERT_LIKE),
    "distilbert": FamilySpec(
        base="distilbert", layers="transformer.layer", query="attention.q_lin", key="attention.k_lin",
        value="attention.v_lin", attn_out="attention.out_lin", ffn_in="ffn.lin1", ffn_out="ffn.lin2",
        heads_attr="n_heads", hidden_attr="dim", ffn_attr="hidden_dim", layers_attr="n_layers",
    ),
}


def family_of(model_type: str) -> FamilySpec:
    if model_type not in FAMILIES:
        raise ModelError(
            f"model family {model_type!r} is not supported",
            fix=f"use a checkpoint of one of: {', '.join(sorted(FAMILIES))}",
        )
    return FAMILIES[model_type]


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = getattr(module, part)
    return module


class Arch:
    """A view of a HF sequence classifier through its family's module map."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.config = model.config
        self.spec = family_of(model.config.model_type)
        self.base = getattr(model, self.spec.base)

    @property
    def num_layers(self) -> int:
        return len(self.layers())

    @property
    def num_heads(self) -> int:
        return int(getattr(self.config, self.spec.heads_attr))

    @property
    def hidden_size(self) -> int:
        return int(getattr(self.config, self.spec.hidden_attr))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def layers(self) -> nn.ModuleList:
        return _get(self.base, self.spec.layers)  # type: ignore[return-value]

    def layer_prefix(self, index: int) -> str:
        return f"{self.spec.base}.{self.spec.layers}.{index}."

    def linear(self, index: int, module_type: str) -> nn.Linear:
        return _get(self.layers()[index], getattr(self.spec, module_type))  # type: ignore[return-value]

    def linears(self) -> dict[str, nn.Linear]:
        """Every prunable weight matrix, keyed by its parameter-name prefix ('bert.encoder.layer.0.attention.self.query')."""
        out = {}
        for i in range(self.num_layers):
            for kind in MODULE_TYPES:
                out[self.layer_prefix(i) + getattr(self.spec, kind)] = self.linear(i, kind)
        return out

    def word_embeddings(self) -> nn.Embedding:
        return self.base.embeddings.word_embeddings

    def is_encoder_param(self, name: str) -> bool:
        """True for parameters inside the transformer layers (Child-Tuning D's scope)."""
        return name.startswith(f"{self.spec.base}.{self.spec.layers}.")

    def locate(self, param_name: str) -> tuple[int | None, str]:
        """(layer index or None, module type) of a parameter name, for per-layer accounting."""
        prefix = f"{self.spec.base}.{self.spec.layers}."
        if not param_name.startswith(prefix):
            group = "embeddings" if ".embeddings" in param_name else "head"
            return None, group
        index_text, rest = param_name[len(prefix):].split(".", 1)
        for kind in MODULE_TYPES:
            if rest.startswith(getattr(self.spec, kind) + "."):
                return int(index_text), kind
        return int(index_text), "other"
