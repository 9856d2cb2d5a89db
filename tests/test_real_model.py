"""The embedded pre-trained model on real data subsets: learned quality, not just 'it runs' (slow, in CI)."""

import copy

import pytest
import torch

from analysis.core.config import FinetuneConfig
from analysis.models.arch import Arch
from analysis.reports.whatif import Edit, WhatIf
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.training.loop import evaluate

pytestmark = pytest.mark.slow


def finetune(save_weights=False, **flags):
    return jobs.execute("finetune", FinetuneConfig.from_flat({}, flags), save_weights=save_weights).record


def test_sst2_subset_learns_well_above_chance_and_whatif_edits_cost_accuracy():
    rec = finetune(model="default", dataset="sst2", train_size=2000, epochs=1, seed=0, save_weights=True)
    assert rec.status == "done" and rec.summary["eval_examples"] == 872
    assert rec.metrics["accuracy"] > 0.78  # chance is 0.51; the full 8k/1-epoch run reaches ~0.85
    # what-if on the fine-tuned model: no edit is the stored metric exactly; a layer without heads, or 90% of the
    # weights at random, lowers it; an edit equals the same masks applied by hand and evaluated the ordinary way
    session = WhatIf(RunStore(), rec.run_id)
    assert session.evaluate(Edit())["value"] == session.base_value == pytest.approx(rec.metrics["accuracy"], abs=0.003)
    no_heads = session.evaluate(Edit(heads=tuple((0, h) for h in range(12))))
    scrambled = session.evaluate(Edit(sparsity=0.9, criterion="random"))
    assert no_heads["value"] < session.base_value and no_heads["agreement"] < 1
    assert scrambled["value"] < session.base_value - 0.05 and scrambled["encoder_sparsity"] == pytest.approx(0.9, abs=1e-3)
    model = copy.deepcopy(session.model)
    out = Arch(model).linear(0, "attn_out").weight
    with torch.no_grad():
        out[:, :] = 0  # every head of layer 0 removed by hand
    # the what-if's batch size: in bf16 (auto on a CPU with AMX) another batching pads differently and can flip a
    # near-tie example (seen: 0.7775 against 0.7764 at batch 64), so "exactly" holds for the same computation only
    by_hand, _ = evaluate(model, session.dev, session.task, session.batch_size, session.precision, torch.device("cpu"))
    assert no_heads["value"] == pytest.approx(by_hand["accuracy"], abs=1e-9)


def test_stsb_regression_uses_its_own_metrics():
    rec = finetune(model="default", dataset="stsb", train_size=2000, epochs=2, seed=0, eval_size=500)
    assert set(rec.metrics) == {"pearson", "spearman"}
    assert rec.metrics["pearson"] > 0.6  # measured 0.758 here (1 epoch of 1,500 examples is not enough: 0.04)


def test_lstm_trains_on_the_default_vocabulary():
    rec = finetune(model="lstm", dataset="sst2", train_size=3000, epochs=2, lr=2e-3, seed=0, lstm_hidden=128)
    assert rec.metrics["accuracy"] > 0.6
