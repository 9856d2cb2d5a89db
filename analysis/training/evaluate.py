"""Evaluate a stored run's model on any dataset (domain transfer, probes): no training, nothing stored."""

from __future__ import annotations

from typing import Any

import torch

from analysis.core.config import BASELINE_MODELS, DataConfig, recorded_precision
from analysis.core.errors import ConfigError
from analysis.data.tasks import load_task
from analysis.data.tokens import encode
from analysis.models import loading as models
from analysis.store.index import RunStore
from analysis.training.loop import TaskSpec, evaluate


def load_run_model(store: RunStore, run_id: str, encoder_only: bool = False) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """(model, tokenizer, record) of a finished run that kept its weights: a transformer, or the embedding bag
    unless `encoder_only` (probes and head importance read an encoder's layers)."""
    record = store.require(run_id)
    folder = record.path / "model"
    if record.status != "done" or not folder.is_dir():
        raise ConfigError(f"run {run_id} is {record.status} and has {'no' if not folder.is_dir() else ''} weights",
                          fix="pick a finished run that kept its weights")
    model_name = (record.config.get("model") or {}).get("model")
    if encoder_only and (model_name in BASELINE_MODELS or models.is_embedding_bag_folder(folder)):
        raise ConfigError(f"run {run_id} trained the {model_name} baseline, which has no encoder layers",
                          fix="pick a run of a transformer (a fine-tune or prune of --model default or a checkpoint)")
    num_labels = int(store.record(run_id).get("summary", {}).get("num_labels", 0)) or _labels_of(folder)
    model, tokenizer = models.load_saved_model(folder, num_labels)
    return model, tokenizer, record.config


def _labels_of(folder: Any) -> int:
    import json

    return int(json.loads((folder / "config.json").read_text()).get("num_labels", 2))


def evaluate_on(store: RunStore, run_id: str, dataset: str, eval_size: int | None = None, seed: int = 0,
                device: str = "cpu", batch_size: int = 128, precision: str | None = None) -> dict[str, Any]:
    """Metrics of a stored model on `dataset`'s evaluation split (its label set must match the model's), in
    `precision` (default: the one the run was trained in)."""
    model, tokenizer, config = load_run_model(store, run_id)
    max_length = config.get("data", {}).get("max_length", 128)
    data = load_task(DataConfig(dataset=dataset, eval_size=eval_size, max_length=max_length), seed, need_train=False)
    if data.card.num_labels != model.config.num_labels:
        raise ConfigError(f"{dataset} has {data.card.num_labels} labels, the model of run {run_id} predicts "
                          f"{model.config.num_labels}", fix="evaluate on a dataset with the same label set")
    enc = encode(data.eval, tokenizer, max_length)
    task = TaskSpec(data.card.num_labels, data.card.metrics, tokenizer.pad_token_id or 0)
    precision = precision or recorded_precision(config) or "fp32"
    metrics, _ = evaluate(model.to(device), enc, task, batch_size, precision, torch.device(device))
    return {"run_id": run_id, "dataset": dataset, "split": data.eval_split, "examples": len(enc),
            "precision": precision, **metrics}
