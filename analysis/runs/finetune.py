"""The fine-tune experiment: any fine-tuning method of `methods.finetuning` on a task, stored as a run."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.core.config import ConfigBase, DataConfig, FinetuneConfig, ModelConfig, without_default_options
from analysis.core.errors import ConfigError
from analysis.data.tasks import fingerprint as data_fingerprint
from analysis.data.tasks import load_task
from analysis.data.tokens import encode, truncated_count
from analysis.methods.finetuning.base import FINETUNE_METHODS, RunInputs, method_options  # noqa: F401 (re-exported)
from analysis.models import loading as models
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult
from analysis.store.labels import run_label
from analysis.training.loop import Hook, TaskSpec, fit, set_seed


class WeightChangeHook(Hook):
    """Stores ||w - w0|| / ||w0|| per layer and module type at the end of training (every method, vanilla too)."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def on_train_begin(self, state: Any) -> None:
        # a resumed run rebuilds the same initial model before its checkpoint is loaded, so no state to keep
        self.start = {n: p.detach().clone() for n, p in state.model.named_parameters()}

    @torch.no_grad()
    def on_train_end(self, state: Any) -> None:
        self.ctx.save_json("weight_change", weight_change(state.model, self.start))


def weight_change(model: nn.Module, start: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Relative change per (layer, module type); layer None holds embeddings and the head."""
    from analysis.models.arch import Arch

    arch = Arch(model) if not models.is_baseline(model) else None
    groups: dict[tuple[Any, str], list[float]] = {}
    for name, p in model.named_parameters():
        key = arch.locate(name) if arch else (None, name.split(".")[0])
        acc = groups.setdefault(key, [0.0, 0.0])
        acc[0] += float((p.detach() - start[name]).pow(2).sum())
        acc[1] += float(start[name].pow(2).sum())
    return [{"layer": layer, "module": kind, "relative_change": (d ** 0.5) / max(w ** 0.5, 1e-12)}
            for (layer, kind), (d, w) in sorted(groups.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0, kv[0][1]))]


def load_inputs(model_cfg: ModelConfig, data_cfg: DataConfig, seed: int, need_train: bool = True,
                holdout_fraction: float = 0.0) -> RunInputs:
    """Load data (subsampled under the seed) and the model (head initialised under the seed), tokenised.

    With `holdout_fraction`, a seeded, stratified share of the training data is set aside for choosing
    the epoch (never the evaluation split)."""
    data = load_task(data_cfg, seed, need_train)
    holdout = None
    if data.train is not None and holdout_fraction > 0:
        data.train, held = split_holdout(data.train, holdout_fraction, seed)
        holdout = held
    set_seed(seed)
    model, tokenizer = models.build_model(model_cfg, data.card.num_labels)
    limit = models.max_tokens(model)
    if limit is not None and data_cfg.max_length > limit:
        raise ConfigError(f"max_length={data_cfg.max_length} is longer than {model_cfg.model!r} accepts ({limit})",
                          fix=f"use --max-length {limit} or less")
    train = encode(data.train, tokenizer, data_cfg.max_length) if data.train is not None else None
    evaluation = encode(data.eval, tokenizer, data_cfg.max_length)
    task = TaskSpec(data.card.num_labels, data.card.metrics, tokenizer.pad_token_id or 0)
    held_enc = encode(holdout, tokenizer, data_cfg.max_length) if holdout is not None else None
    return RunInputs(model, tokenizer, data, train, evaluation, task, held_enc, torch.get_rng_state())


def split_holdout(train: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(rest, held-out) of a training set; at least one example on each side."""
    from analysis.data.tasks import stratified_indices

    n = len(train)
    size = min(n - 1, max(1, int(round(fraction * n))))
    held = stratified_indices(train.labels, size, seed + 1, train.card.task == "classification")
    rest = np.setdiff1d(np.arange(n), held)
    return train.take(rest), train.take(held)


def describe_run(model_cfg: ModelConfig, data_cfg: DataConfig, method: str, seed: int, kind: str = "finetune",
                 config: dict[str, Any] | None = None) -> dict[str, Any]:
    row = {"kind": kind, "method": method, "dataset": data_cfg.dataset, "model": model_cfg.model, "seed": seed,
           "config": config or {}, "summary": {"train_examples": data_cfg.train_size or "all"}}
    return {k: row[k] for k in ("method", "dataset", "model", "seed")} | {"label": run_label(row)}


def input_fingerprints(model_cfg: ModelConfig, data_cfg: DataConfig) -> dict[str, str]:
    out = {"data": data_fingerprint(data_cfg), "model": models.fingerprint(model_cfg.model)}
    if not model_cfg.is_transformer:
        out["tokenizer"] = models.fingerprint(model_cfg.tokenizer)
    return out


def save_model(model: nn.Module, tokenizer: Any, ctx: RunContext) -> None:
    """Weights as a loadable HF folder (safetensors), the embedding bag's tensors and shape (loadable too), or the
    LSTM's tensors plus its config."""
    folder = ctx.dir / "model"
    if isinstance(model, models.EmbeddingBagClassifier):
        models.save_embedding_bag(model, folder)
    elif isinstance(model, models.LSTMClassifier):
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "lstm.safetensors"))
        ctx.save_json("lstm_config", model.config)
    else:
        with models.quiet_transformers():
            model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def run_summary(inputs: RunInputs, result: Any, max_length: int) -> dict[str, Any]:
    assert inputs.train is not None
    return {
        "train_examples": len(inputs.train), "eval_examples": len(inputs.eval),
        "eval_split": inputs.data.eval_split, "metric": inputs.task.metrics[0],
        "train_seconds": result.train_seconds, "examples_per_second": result.examples_per_second,
        "examples_seen": result.examples_seen, "steps": result.steps, "tokens_seen": result.tokens_seen,
        "chosen_epoch": result.chosen_epoch, "holdout_examples": len(inputs.holdout) if inputs.holdout else 0,
        "num_labels": inputs.task.num_labels,
        "train_truncated": truncated_count(inputs.train, max_length),
        "eval_truncated": truncated_count(inputs.eval, max_length),
        "parameters": int(sum(p.numel() for p in inputs.model.parameters())),
        "epoch_metrics": result.epoch_metrics,
    }


@EXPERIMENTS.register("finetune")
class Finetune(Experiment):
    config_cls = FinetuneConfig
    checkpointed = True

    def describe(self, config: FinetuneConfig) -> dict[str, Any]:
        return describe_run(config.model, config.data, config.method, config.seed, config=config.to_dict())

    def fingerprints(self, config: FinetuneConfig) -> dict[str, str]:
        return input_fingerprints(config.model, config.data)

    def normalise(self, config: FinetuneConfig) -> FinetuneConfig:
        options = FINETUNE_METHODS.get(config.method).Options
        return config.replace(options=without_default_options(options, config.options, f"options of {config.method}"))

    def prepare(self, config: FinetuneConfig, device: str) -> tuple[FinetuneConfig, ConfigBase, RunInputs]:
        options = method_options(config.method, config.options)
        inputs = load_inputs(config.model, config.data, config.seed, holdout_fraction=config.train.holdout_fraction)
        FINETUNE_METHODS.get(config.method)().check(options, inputs)
        return config, options, inputs

    def run(self, prepared: tuple[FinetuneConfig, ConfigBase, RunInputs], ctx: RunContext) -> RunResult:
        config, options, inputs = prepared
        assert inputs.train is not None
        device = torch.device(ctx.device)
        hooks = FINETUNE_METHODS.get(config.method)().hooks(inputs.model, inputs, options, config, ctx)
        hooks.append(WeightChangeHook(ctx))
        torch.set_rng_state(inputs.rng_state)
        result = fit(inputs.model, inputs.train, inputs.eval, inputs.task, config.train, config.seed, device,
                     hooks, progress=ctx.progress, log=ctx.log, holdout=inputs.holdout,
                     checkpoint=ctx.checkpointer(config.train))
        ctx.save_arrays("predictions", {
            "outputs": result.predictions, "indices": inputs.data.eval.indices,
            "labels": np.asarray(inputs.eval.labels),
        })
        if ctx.save_weights:
            save_model(inputs.model, inputs.tokenizer, ctx)
        summary = run_summary(inputs, result, config.data.max_length)
        return RunResult(dict(result.metrics), summary, {"options": options.to_dict()})
