"""Fine-tuning methods, one per file, registered by name in FINETUNE_METHODS (vanilla is in base; the registry
finds the others)."""

from analysis.methods.finetuning.base import FINETUNE_METHODS, FinetuneMethod, RunInputs

__all__ = ["FINETUNE_METHODS", "FinetuneMethod", "RunInputs"]
