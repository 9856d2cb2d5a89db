"""SparseBERT (Xu et al., NAACL 2021): knowledge-aware pruning, i.e. pruning while distilling.

Student = the pre-trained model, pruned by per-tensor magnitude on a cubic schedule; teacher = the dense
model fine-tuned on the task; loss = attention-score MSE + hidden-state MSE + soft cross-entropy.
`--start finetuned` prunes the fine-tuned model instead; each loss weight can be set to 0 to ablate it.
"""

from analysis.methods.pruning.base import PRUNING_METHODS
from analysis.methods.pruning.unstructured import Unstructured, with_defaults


@PRUNING_METHODS.register("sparsebert")
class SparseBert(Unstructured):
    """Knowledge-aware pruning (SparseBERT): the pre-trained model pruned by |w| on a cubic ramp while distilling
    from the dense fine-tuned teacher."""

    order = 10

    Options = with_defaults(start="pretrained", schedule="cubic", distill=True)
