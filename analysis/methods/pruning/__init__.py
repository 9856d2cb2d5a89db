"""Pruning methods, one per file, registered by name in PRUNING_METHODS."""

from analysis.methods.pruning import ffn
from analysis.methods.pruning import gradual_magnitude
from analysis.methods.pruning import heads
from analysis.methods.pruning import layers
from analysis.methods.pruning import magnitude
from analysis.methods.pruning import movement
from analysis.methods.pruning import random
from analysis.methods.pruning import small_dense
from analysis.methods.pruning import sparsebert
from analysis.methods.pruning.base import PRUNING_METHODS, PruneConfig, PruningMethod

__all__ = ["PRUNING_METHODS", "PruneConfig", "PruningMethod"]
