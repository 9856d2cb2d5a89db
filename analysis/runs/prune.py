"""The prune experiment: teacher (from the store, or trained first) -> student -> method -> measured sparsity."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from analysis.core.config import FinetuneConfig, without_default_options
from analysis.core.errors import ConfigError
from analysis.data.tokens import tokenizer_fingerprint
from analysis.methods.pruning.base import PRUNING_METHODS, PruneConfig, PruneContext
from analysis.models import loading as models
from analysis.models.sparsity import compact_summary, count_params, encoder_linear_params, sparsity_report
from analysis.runs.experiment import EXPERIMENTS, Experiment, RunContext, RunResult, execute
from analysis.runs.finetune import describe_run, input_fingerprints, load_inputs, run_summary, save_model
from analysis.store.index import RunStore
from analysis.training.loop import evaluate, fit


def teacher_config(config: PruneConfig) -> FinetuneConfig:
    """The dense fine-tuned model a pruning run learns from: same model, data and training settings."""
    return FinetuneConfig(model=config.model, data=config.data, train=config.train, seed=config.teacher_seed)


def load_teacher(config: PruneConfig, inputs: Any, store: RunStore, device: str) -> tuple[torch.nn.Module, str]:
    """The teacher's weights: a given run id (checked against this task and tokenizer) or the auto teacher."""
    if config.teacher == "auto":
        record = execute("finetune", teacher_config(config), store, device=device, need_weights=True).record
    else:
        record = store.require(config.teacher)
        check_teacher(record, config, inputs)
    folder = record.path / "model"
    if not folder.is_dir():
        raise ConfigError(f"teacher run {record.run_id} kept no weights", fix="re-run it without --no-save-weights")
    return models.load_encoder_classifier(str(folder), inputs.task.num_labels), record.run_id


def check_teacher(record: Any, config: PruneConfig, inputs: Any) -> None:
    """A teacher must be a finished fine-tune on the same task, with the same tokenizer and label count."""
    if record.status != "done" or record.kind != "finetune":
        raise ConfigError(f"teacher {record.run_id} is a {record.status} {record.kind} run",
                          fix="pass the id of a finished fine-tuning run, or --teacher auto")
    dataset = record.config.get("data", {}).get("dataset")
    if dataset != config.data.dataset:
        raise ConfigError(f"teacher {record.run_id} was fine-tuned on {dataset!r}, not {config.data.dataset!r}",
                          fix="use a teacher fine-tuned on the same task, or --teacher auto")
    folder = record.path / "model"
    teacher_tok = models.load_tokenizer(str(folder)) if folder.is_dir() else None
    if teacher_tok is None or tokenizer_fingerprint(teacher_tok) != tokenizer_fingerprint(inputs.tokenizer):
        raise ConfigError(f"teacher {record.run_id} uses a different tokenizer from {config.model.model!r}",
                          fix="use a teacher fine-tuned from the same pre-trained model")


@EXPERIMENTS.register("prune")
class Prune(Experiment):
    config_cls = PruneConfig
    checkpointed = True

    def describe(self, config: PruneConfig) -> dict[str, Any]:
        return describe_run(config.model, config.data, config.method, config.seed, "prune", config.to_dict())

    def fingerprints(self, config: PruneConfig) -> dict[str, str]:
        return input_fingerprints(config.model, config.data)

    def normalise(self, config: PruneConfig) -> PruneConfig:
        options = PRUNING_METHODS.get(config.method).Options
        return config.replace(options=without_default_options(options, config.options, f"options of {config.method}"))

    def prepare(self, config: PruneConfig, device: str) -> tuple:
        method = PRUNING_METHODS.get(config.method)()
        options = method.Options.from_dict(config.options, where=f"options of {config.method}")
        inputs = load_inputs(config.model, config.data, config.seed)
        method.check(options, inputs.model)
        if config.teacher != "auto" and method.needs_teacher(options):
            check_teacher(RunStore().require(config.teacher), config, inputs)
        return config, method, options, inputs

    def run(self, prepared: tuple, ctx: RunContext) -> RunResult:
        config, method, options, inputs = prepared
        teacher, teacher_id = None, None
        if method.needs_teacher(options):
            teacher, teacher_id = load_teacher(config, inputs, ctx.store, ctx.device)
        student = inputs.model
        if method.start_from(options) == "finetuned":
            assert teacher is not None
            student = copy.deepcopy(teacher)
        original = {"params": count_params(student), "encoder": encoder_linear_params(student)}
        pctx = PruneContext(student, teacher, inputs, config, options, ctx, teacher_id)
        pctx.student = method.before_training(pctx)
        device = torch.device(ctx.device)
        if method.trains(options):
            # whatever ran since prepare (e.g. training the teacher) must not change the student's dropout
            torch.set_rng_state(inputs.rng_state)
            result = fit(pctx.student, inputs.train, inputs.eval, inputs.task, config.train, config.seed, device,
                         method.hooks(pctx), progress=ctx.progress, log=ctx.log,
                         checkpoint=ctx.checkpointer(config.train))
            metrics, outputs, summary = result.metrics, result.predictions, run_summary(inputs, result, config.data.max_length)
        else:
            pctx.student.to(device)
            metrics, outputs = evaluate(pctx.student, inputs.eval, inputs.task, config.train.eval_batch_size,
                                        config.train.precision, device)
            summary = {"train_examples": 0, "eval_examples": len(inputs.eval), "metric": inputs.task.metrics[0]}
        method.save_artefacts(pctx, pctx.student)
        report = sparsity_report(pctx.student.cpu(), original["params"], original["encoder"], config.data.max_length)
        ctx.save_json("sparsity", report)
        ctx.save_arrays("predictions", {"outputs": outputs, "indices": inputs.data.eval.indices,
                                        "labels": np.asarray(inputs.eval.labels)})
        if ctx.save_weights:
            save_model(pctx.student, inputs.tokenizer, ctx)
        summary.update(compact_summary(report), requested_sparsity=config.sparsity, teacher=teacher_id)
        return RunResult(dict(metrics), summary, {"options": options.to_dict(), "teacher": teacher_id})
