"""Gradual magnitude pruning (Zhu & Gupta 2017): the cubic schedule during fine-tuning, no teacher."""

from analysis.methods.pruning.base import PRUNING_METHODS
from analysis.methods.pruning.unstructured import Unstructured, with_defaults


@PRUNING_METHODS.register("gradual-magnitude")
class GradualMagnitude(Unstructured):
    """Start from the pre-trained model; sparsity follows s_t = s_f (1 - (1 - t/T)^3); masks by |w|."""

    order = 20

    Options = with_defaults(start="pretrained", schedule="cubic")
