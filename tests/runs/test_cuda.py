"""The GPU path: every kind of work on `--device cuda` in the precision chosen for the GPU (bf16 where supported,
else fp16 with a gradient scaler). Skipped, with the reason, on a machine without CUDA."""

import pytest
import torch

from analysis.core.config import FinetuneConfig
from analysis.core.precision import resolve
from analysis.methods.pruning import PruneConfig
from analysis.reports.whatif import Edit, WhatIf
from analysis.runs import experiment as jobs
from analysis.runs.heads import HeadsConfig
from analysis.runs.probe import ProbeConfig
from analysis.store.index import RunStore

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine: the GPU path runs where one is")


def flags(tiny_models, sentiment_files, **extra):
    train, evaluation = sentiment_files
    return {"model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation), "epochs": 2,
            "batch_size": 8, "lr": 1e-3, **extra}


def test_training_evaluation_and_the_chosen_precision_on_cuda(tiny_models, sentiment_files):
    rec = jobs.execute("finetune", FinetuneConfig.from_flat({}, flags(tiny_models, sentiment_files)),
                       device="cuda").record
    assert rec.status == "done" and rec.summary["precision"] == resolve("auto", "cuda") in ("bf16", "fp16")
    whatif = WhatIf(RunStore(), rec.run_id, device=torch.device("cuda"))
    assert whatif.evaluate(Edit())["value"] == whatif.base_value
    assert whatif.evaluate(Edit(sparsity=0.9, criterion="random"))["kl"] > 0


@pytest.mark.parametrize("method", ["sparsebert", "small-dense"])
def test_distillation_on_cuda(tiny_models, sentiment_files, method):
    cfg = PruneConfig.from_flat({}, flags(tiny_models, sentiment_files, method=method, sparsity=0.5))
    assert jobs.execute("prune", cfg, device="cuda").record.status == "done"


def test_child_tuning_fisher_pass_and_the_lstm_arm_on_cuda(tiny_models, sentiment_files):
    child = FinetuneConfig.from_flat({}, flags(tiny_models, sentiment_files, method="child-d", options={"p": 0.3}))
    assert jobs.execute("finetune", child, device="cuda").record.status == "done"
    lstm = FinetuneConfig.from_flat({}, {**flags(tiny_models, sentiment_files), "model": "lstm",
                                         "tokenizer": str(tiny_models["bert"]), "lstm_hidden": 16})
    assert jobs.execute("finetune", lstm, device="cuda").record.status == "done"


def test_probes_and_heads_on_cuda(tiny_models, sentiment_files):
    rec = jobs.execute("finetune", FinetuneConfig.from_flat({}, flags(tiny_models, sentiment_files)),
                       device="cuda").record
    probes = jobs.execute("probe", ProbeConfig(target=rec.run_id, probes=("fidelity", "layer-probe")), device="cuda")
    assert probes.record.status == "done"
    heads = jobs.execute("heads", HeadsConfig(target=rec.run_id, ig_steps=4, ig_examples=8), device="cuda")
    assert heads.record.status == "done"
