"""Pruning methods, one per file, registered by name in PRUNING_METHODS; the registry imports this package's
modules the first time it is asked for a name it does not have, so a new method is one new file here."""

from analysis.methods.pruning.base import PRUNING_METHODS, PruneConfig, PruningMethod

__all__ = ["PRUNING_METHODS", "PruneConfig", "PruningMethod"]
