"""Pruning methods, one per file, registered by name in PRUNING_METHODS."""

from analysis.methods.pruning import (
    ffn,  # noqa: F401
    gradual_magnitude,  # noqa: F401
    heads,  # noqa: F401
    layers,  # noqa: F401
    magnitude,  # noqa: F401
    movement,  # noqa: F401
    random,  # noqa: F401
    small_dense,  # noqa: F401
    sparsebert,  # noqa: F401
)
from analysis.methods.pruning.base import PRUNING_METHODS, PruneConfig, PruningMethod

__all__ = ["PRUNING_METHODS", "PruneConfig", "PruningMethod"]
