"""Pruning methods, one per file, registered by name in PRUNING_METHODS."""

from . import (  # noqa: F401  (each module registers its method)
    experiment, ffn, gradual_magnitude, heads, layers, magnitude, movement, random, small_dense, sparsebert,
)
from .base import PRUNING_METHODS, PruneConfig, PruningMethod

__all__ = ["PRUNING_METHODS", "PruneConfig", "PruningMethod"]
