"""Tokenisation (cached on disk per tokenizer, data and max length) and length-bucketed dynamic batches."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from analysis.core import settings
from analysis.data.tasks import TextDataset


@dataclass
class Encoded:
    """Token ids of a split, stored flat (ids + offsets) so slicing is cheap and no pickle is needed."""

    ids: np.ndarray  # int32, all examples concatenated
    offsets: np.ndarray  # int64, len n+1
    type_ids: np.ndarray | None  # int8, same layout as ids (sentence pairs)
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ids[a:b], None if self.type_ids is None else self.type_ids[a:b]

    def take(self, idx: np.ndarray) -> "Encoded":
        """The examples `idx`, in that order (a seeded sample of a dev set)."""
        rows = [self.row(int(i)) for i in idx]
        lengths = np.array([len(r[0]) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = np.concatenate([r[0] for r in rows]) if rows else self.ids[:0]
        types = None if self.type_ids is None else np.concatenate([r[1] for r in rows])
        return Encoded(ids, offsets, types, None if self.labels is None else self.labels[idx])


def cache_dir() -> Path:
    return Path(os.environ.get("PRUNESCOPE_CACHE", settings.store_root() / "cache")) / "tokens"


def encode(ds: TextDataset, tokenizer, max_length: int) -> Encoded:
    """Tokenise a dataset (truncating to max_length), reading and writing the on-disk cache."""
    key = hashlib.sha256(
        "|".join([tokenizer_fingerprint(tokenizer), ds.fingerprint, ds.split, str(max_length),
                  ",".join(ds.card.text_columns), hashlib.sha256(ds.indices.tobytes()).hexdigest()]).encode()
    ).hexdigest()[:24]
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                type_ids = z["type_ids"] if z["type_ids"].size else None
                return Encoded(z["ids"], z["offsets"], type_ids, ds.labels)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a torn cache file is rebuilt, never trusted
    enc = tokenise(ds, tokenizer, max_length)
    _save_atomic(path, enc)
    return enc


def tokenise(ds: TextDataset, tokenizer, max_length: int) -> Encoded:
    out = tokenizer(*ds.texts, truncation=True, max_length=max_length, padding=False)
    ids = [np.asarray(x, dtype=np.int32) for x in out["input_ids"]]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in ids])
    type_ids = None
    if "token_type_ids" in out and len(ds.texts) == 2:
        type_ids = np.concatenate([np.asarray(x, dtype=np.int8) for x in out["token_type_ids"]])
    return Encoded(np.concatenate(ids) if ids else np.zeros(0, np.int32), offsets, type_ids, ds.labels)


def _save_atomic(path: Path, enc: Encoded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    empty = np.zeros(0, np.int8)
    np.savez(tmp, ids=enc.ids, offsets=enc.offsets, type_ids=enc.type_ids if enc.type_ids is not None else empty)
    os.replace(tmp, path)


def truncated_count(enc: Encoded, max_length: int) -> int:
    """How many examples hit max_length (i.e. were probably truncated)."""
    return int((enc.lengths >= max_length).sum())


# ----------------------------------------------------------------------------------------------
# Batching


def batch_order(lengths: np.ndarray, batch_size: int, seed: int, shuffle: bool, bucket: bool) -> list[np.ndarray]:
    """Index batches. Training: shuffled, then sorted by length inside pools of 50 batches (less padding)."""
    n = len(lengths)
    if not shuffle:
        order = np.argsort(-lengths, kind="stable") if bucket else np.arange(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if not bucket:
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    pool = batch_size * 50
    batches = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(enc: Encoded, idx: np.ndarray, pad_id: int, with_types: bool) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest example (dynamic padding)."""
    lengths = enc.lengths[idx]
    width = int(lengths.max())
    ids = np.full((len(idx), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64) if with_types and enc.type_ids is not None else None
    for row, i in enumerate(idx):
        a, b = enc.offsets[i], enc.offsets[i + 1]
        ids[row, : b - a] = enc.ids[a:b]
        mask[row, : b - a] = 1
        if types is not None:
            types[row, : b - a] = enc.type_ids[a:b]  # type: ignore[index]
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types)
    return batch


def accepts_token_types(model: torch.nn.Module) -> bool:
    return "token_type_ids" in inspect.signature(model.forward).parameters


def iterate(enc: Encoded, batch_size: int, pad_id: int, with_types: bool, seed: int = 0,
            shuffle: bool = False, bucket: bool = True) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    for idx in batch_order(enc.lengths, batch_size, seed, shuffle, bucket):
        yield idx, collate(enc, idx, pad_id, with_types)


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), separators=(",", ":"))
    return hashlib.sha256((type(tokenizer).__name__ + vocab).encode()).hexdigest()[:16]
