"""One-shot magnitude pruning of the fine-tuned model, then fine-tuning of the surviving weights."""

from analysis.methods.pruning.base import PRUNING_METHODS
from analysis.methods.pruning.unstructured import Unstructured, with_defaults


@PRUNING_METHODS.register("magnitude")
class Magnitude(Unstructured):
    """Prune the dense fine-tuned model once by |w| (per tensor, or `--scope global`), then fine-tune."""

    order = 30

    Options = with_defaults(start="finetuned", schedule="one-shot")
