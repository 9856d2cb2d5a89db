"""Head importance, attention maps and token attributions of a stored model (or the pre-trained default)."""

from __future__ import annotations

from analysis.methods.interpret.attributions import (  # noqa: F401
    Explained,
    TruncationWarning,
    eager_copy,
    explain,
    explain_side_by_side,
)
from analysis.models.arch import Arch
from analysis.runs.heads import HeadsConfig, load_explained, stored_importance  # noqa: F401


def with_attention_weights(item: Explained) -> Explained:
    """The same model running eager attention (SDPA returns no attention weights); a copy unless it already does."""
    return Explained(item.name, eager_copy(item.model), item.tokenizer, item.head_ids, item.notes)


def heads_per_layer(model) -> int:
    return Arch(model).num_heads
