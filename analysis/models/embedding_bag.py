"""The floor arm: a classifier on the mean of pretrained token embeddings, with no encoder.

`--model embedding-bag` copies the word-embedding table of the `--tokenizer` model and learns a linear head
(and, unless `bag_freeze_embeddings`, the table) on the masked mean over each text's non-pad tokens. It knows
which words occur and nothing of their context: the level a pruned model falls to when its encoder adds
nothing, drawn under the accuracy figures as the bottom of the knowledge window.

Saved as `embedding_bag.safetensors` with `embedding_bag.json` (its shape) and the tokenizer in the run's
`model/` folder, so a stored run loads back from the folder alone (`load_embedding_bag`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from analysis.core.config import ModelConfig
from analysis.core.errors import ModelError
from analysis.models.lstm import ClassifierOutput

WEIGHTS_FILE = "embedding_bag.safetensors"
CONFIG_FILE = "embedding_bag.json"


@dataclass(frozen=True)
class EmbeddingBagShape:
    """What rebuilds the model before its weights are loaded (and `model.config.num_labels`, as on a HF model)."""

    vocab_size: int
    pad_id: int
    num_labels: int
    embedding_dim: int
    dropout: float
    sparse_embeddings: bool
    freeze_embeddings: bool


class EmbeddingBagClassifier(nn.Module):
    """Token embeddings -> masked mean over the non-pad tokens -> dropout -> linear. Same call signature as a HF
    classifier; one output means regression."""

    def __init__(self, shape: EmbeddingBagShape):
        super().__init__()
        self.config = shape
        self.embeddings = nn.Embedding(shape.vocab_size, shape.embedding_dim, padding_idx=shape.pad_id,
                                       sparse=shape.sparse_embeddings)
        self.embeddings.weight.requires_grad_(not shape.freeze_embeddings)
        self.dropout = nn.Dropout(shape.dropout)
        self.classifier = nn.Linear(shape.embedding_dim, shape.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> ClassifierOutput:
        return ClassifierOutput(self.classifier(self.dropout(self.pooled(input_ids, attention_mask))))

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean embedding of each row's tokens where `attention_mask` is 1 (a row with none gives zeros)."""
        weights = attention_mask.unsqueeze(-1).float()
        summed = (self.embeddings(input_ids).float() * weights).sum(1)
        return summed / weights.sum(1).clamp(min=1.0)


def build_embedding_bag(cfg: ModelConfig, tokenizer, num_labels: int, source: torch.Tensor) -> EmbeddingBagClassifier:
    """The bag on `cfg.tokenizer`'s vocabulary, its table copied from `source` (that model's word embeddings)."""
    if source.shape[0] < len(tokenizer):
        raise ModelError(f"{cfg.tokenizer!r} has {source.shape[0]} word embeddings for a vocabulary of "
                         f"{len(tokenizer)} tokens", fix="use a model whose tokenizer matches its embedding table")
    shape = EmbeddingBagShape(len(tokenizer), tokenizer.pad_token_id or 0, num_labels, int(source.shape[1]),
                              cfg.bag_dropout, cfg.bag_sparse_embeddings, cfg.bag_freeze_embeddings)
    model = EmbeddingBagClassifier(shape)
    with torch.no_grad():
        model.embeddings.weight.copy_(source[: len(tokenizer)])
    return model


def save_embedding_bag(model: EmbeddingBagClassifier, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=1), encoding="utf-8")


def is_embedding_bag_folder(folder: Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def load_embedding_bag(folder: Path) -> EmbeddingBagClassifier:
    """A saved bag, rebuilt from its shape file and loaded strictly from safetensors."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        shape = EmbeddingBagShape(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
        state = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # a missing file, a shape file of other keys, safetensors' own header errors
        raise ModelError(f"cannot load the embedding-bag model in {folder}: {exc}",
                         fix="re-run the fine-tune that made it") from None
    model = EmbeddingBagClassifier(shape)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{folder / WEIGHTS_FILE} does not match {CONFIG_FILE}: {exc}",
                         fix="re-run the fine-tune that made it") from None
    return model
