"""Random pruning: the floor every method must beat (same schedule as gradual magnitude, random scores)."""

from analysis.methods.pruning.base import PRUNING_METHODS
from analysis.methods.pruning.unstructured import Unstructured, with_defaults


@PRUNING_METHODS.register("random")
class RandomPruning(Unstructured):
    """Weights removed in a seeded random order; the masks nest as sparsity grows."""

    order = 50

    criterion = "random"
    Options = with_defaults(start="pretrained", schedule="cubic")
