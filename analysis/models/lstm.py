"""The (Bi)LSTM baseline of the data-scale study: embeddings -> (Bi)LSTM -> max-pool over time -> linear.

Built for CPU speed (`python -m analysis bench lstm`), computing the same function as a packed BiLSTM:
- each direction is its own unidirectional `nn.LSTM` run on the padded batch, so it takes oneDNN's fused
  kernel (packed sequences fall back to a slow per-time-step loop). The backward direction reads every
  sequence reversed *within its own length* (padding stays at the end), so a pad never enters a real
  token's state; a forward direction's pads come after its tokens and are masked out of the pooling.
- with `lstm_sparse_embeddings` the embedding table returns sparse gradients and the optimizer updates only
  the rows a batch used (`analysis.training.sparse_optim`), instead of an AdamW pass over all 30k x 300 weights.
- it runs time-major (no transposes around the kernel), pools with `max` (its backward is one scatter), and
  by default leaves out the tokenizer's [CLS]/[SEP] (`lstm_special_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from analysis.core.config import ModelConfig
from analysis.core.errors import ModelError


@dataclass
class ClassifierOutput:
    logits: torch.Tensor


def reversal_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(width, batch) time positions that reverse each sequence's first `length` steps and keep its padding in
    place. The map is its own inverse, so the same index turns a reversed sequence back."""
    t = torch.arange(width, device=lengths.device).unsqueeze(1)
    rev = lengths.unsqueeze(0) - 1 - t
    return torch.where(rev >= 0, rev, t)


def take_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[index[t, b], b] for time-major (time, batch, features) x."""
    return x.gather(0, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def masked_max(states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over time of (time, batch, features) states at the valid (time, batch) positions.

    Padding gets -inf by a broadcast add, and `max` keeps its indices, so the backward pass is one scatter
    (`amax` would compare every element with the maximum again)."""
    padding = torch.zeros(valid.shape + (1,), dtype=states.dtype, device=states.device)
    return (states + padding.masked_fill_(~valid.unsqueeze(-1), float("-inf"))).max(0).values


class LSTMClassifier(nn.Module):
    """Embeddings -> (Bi)LSTM -> max-pool over time -> linear. Same call signature as a HF classifier.

    With `drop_edge_tokens` the tokenizer's first and last token of each text ([CLS] and [SEP]) are left out:
    they carry no content for an LSTM, and on short texts (SST-2: 13 tokens on average) they are 15% of the work."""

    def __init__(self, vocab_size: int, pad_id: int, num_labels: int, embedding_dim: int, hidden: int,
                 layers: int, bidirectional: bool, dropout: float, sparse_embeddings: bool = False,
                 drop_edge_tokens: bool = False):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "pad_id": pad_id, "num_labels": num_labels,
                       "embedding_dim": embedding_dim, "hidden": hidden, "layers": layers,
                       "bidirectional": bidirectional, "dropout": dropout, "sparse_embeddings": sparse_embeddings,
                       "drop_edge_tokens": drop_edge_tokens}
        self.drop_edge_tokens = drop_edge_tokens
        self.embeddings = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id, sparse=sparse_embeddings)
        directions = 2 if bidirectional else 1
        widths = [embedding_dim] + [hidden * directions] * (layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(w, hidden) for w in widths)
        self.backward_lstms = nn.ModuleList(nn.LSTM(w, hidden) for w in widths) if bidirectional else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden * directions, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> ClassifierOutput:
        ids, valid = input_ids.t(), attention_mask.t().bool()  # time-major
        if self.drop_edge_tokens and ids.shape[0] > 2:
            ids, valid = ids[1:-1], valid[2:].clone()  # a text of n tokens keeps positions 0..n-3
            valid[0] = True  # an empty text keeps its [SEP], so that every row has a state to pool
        x = self.embeddings(ids)
        if torch.is_autocast_enabled(x.device.type):  # the LSTM reads bf16 anyway: half the bytes to drop and reorder
            x = x.to(torch.get_autocast_dtype(x.device.type))
        x = self.dropout(x)
        reverse = reversal_index(valid.sum(0).clamp(min=1), ids.shape[0]) if self.backward_lstms else None
        last = len(self.forward_lstms) - 1
        for i, lstm in enumerate(self.forward_lstms):
            states = [lstm(x)[0]]
            if self.backward_lstms is not None:
                states.append(self.backward_lstms[i](take_positions(x, reverse))[0])
            if i < last:  # the next layer reads both directions position by position
                if len(states) == 2:
                    states[1] = take_positions(states[1], reverse)
                x = self.dropout(torch.cat(states, -1))
        # max-pooling ignores order, so the reversed direction is pooled as it stands (its pads are still last)
        pooled = torch.cat([masked_max(s, valid) for s in states], -1)
        return ClassifierOutput(self.classifier(self.dropout(pooled)))


def build_lstm(cfg: ModelConfig, tokenizer, num_labels: int, source: torch.Tensor | None) -> LSTMClassifier:
    """An LSTM on `cfg.tokenizer`'s vocabulary, embeddings random, or `source` (that model's word embeddings,
    PCA-projected to the LSTM's width) when `cfg.lstm_embeddings` is 'pretrained'."""
    dim = cfg.lstm_embedding_dim or (source.shape[1] if source is not None else 300)
    if not cfg.lstm_special_tokens:
        check_edge_tokens(tokenizer)
    model = LSTMClassifier(len(tokenizer), tokenizer.pad_token_id or 0, num_labels, dim, cfg.lstm_hidden,
                           cfg.lstm_layers, cfg.lstm_bidirectional, cfg.lstm_dropout, cfg.lstm_sparse_embeddings,
                           not cfg.lstm_special_tokens)
    if source is not None:
        with torch.no_grad():
            model.embeddings.weight.copy_(project_embeddings(source[: len(tokenizer)], dim))
    return model


def check_edge_tokens(tokenizer) -> None:
    """Refuse to drop each text's first and last token unless the tokenizer puts special tokens there."""
    ids = tokenizer("a")["input_ids"]
    special = set(tokenizer.all_special_ids)
    if len(ids) < 3 or ids[0] not in special or ids[-1] not in special:
        raise ModelError(f"{type(tokenizer).__name__} does not wrap a text in start and end tokens, so the LSTM "
                         "cannot leave them out", fix="set lstm_special_tokens to true")


def project_embeddings(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Copy when widths match; otherwise project onto the top `dim` principal directions (scale kept)."""
    if weight.shape[1] == dim:
        return weight.clone()
    if dim > weight.shape[1]:
        raise ModelError(
            f"lstm_embedding_dim={dim} is wider than the pretrained embeddings ({weight.shape[1]})",
            fix=f"use lstm_embedding_dim <= {weight.shape[1]} or leave it unset",
        )
    centred = weight - weight.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:dim].T
