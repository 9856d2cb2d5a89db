"""Fine-tuning methods, one per file, registered by name in FINETUNE_METHODS (vanilla is in base)."""

from analysis.methods.finetuning import child_tuning  # noqa: F401  (registers child-f, child-d)
from analysis.methods.finetuning.base import FINETUNE_METHODS, FinetuneMethod, RunInputs

__all__ = ["FINETUNE_METHODS", "FinetuneMethod", "RunInputs"]
