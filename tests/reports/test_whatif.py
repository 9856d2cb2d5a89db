"""What-if edits on a stored model: the identity is exact, each edit equals the same change made by hand and
evaluated by the ordinary path, repeated edits come from the cache, and bad edits are refused clearly."""

import copy
import json

import numpy as np
import pytest
import torch

from analysis.cli.base import main
from analysis.core.errors import ConfigError
from analysis.methods.pruning.masks import apply_masks_, magnitude_scores, select
from analysis.models.arch import Arch
from analysis.models.compact import drop_layers_, remove_ffn_neurons_
from analysis.models.heads import remove_heads_
from analysis.reports.whatif import Edit, WhatIf, apply_edit_, parse_ffn, parse_heads
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.training.loop import evaluate


def by_hand(session: WhatIf, change) -> float:
    model = copy.deepcopy(session.model)
    change(model)
    metrics, _ = evaluate(model, session.dev, session.task, 64, session.precision, torch.device("cpu"))
    return metrics[session.metric]


def test_no_edit_gives_the_unedited_metric_exactly(finetuned):
    session = WhatIf(RunStore(), finetuned)
    result = session.evaluate(Edit())
    assert result["value"] == result["unedited"] == session.base_value
    assert result["agreement"] == 1.0 and abs(result["kl"]) < 1e-9 and result["flipped"] == []
    assert result["change"] == 0 and result["encoder_sparsity"] == 0


def test_unstructured_edit_equals_masks_applied_by_hand(finetuned):
    session = WhatIf(RunStore(), finetuned)
    result = session.evaluate(Edit(sparsity=0.7))

    def mask(model):
        weights = {p + ".weight": lin.weight for p, lin in Arch(model).linears().items()}
        with torch.no_grad():
            apply_masks_(weights, select(magnitude_scores(weights), 0.7, "global"))

    assert result["value"] == pytest.approx(by_hand(session, mask), abs=1e-9)
    assert result["encoder_sparsity"] == pytest.approx(0.7, abs=0.005)


def test_heads_ffn_and_layers_equal_their_real_removal(finetuned):
    session = WhatIf(RunStore(), finetuned)
    edit = Edit(heads=((0, 1), (1, 0), (1, 3)), ffn=((0, 0.5),), layers=(1,))
    model, removed, _ = session.edited_model(edit)
    real = copy.deepcopy(session.model)
    remove_heads_(real, {0: [0, 2, 3], 1: [1, 2]})
    remove_ffn_neurons_(real, {0: removed["ffn"][0]})
    drop_layers_(real, [0])
    ids = torch.tensor([[101, 2307, 3185, 102, 0]])
    x = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    with torch.no_grad():
        assert torch.allclose(model(**x).logits, real.eval()(**x).logits, atol=1e-5)
    assert len(removed["ffn"][0]) == Arch(session.model).linear(0, "ffn_in").out_features // 2


def test_edits_change_the_outputs_and_repeat_from_the_cache(finetuned):
    session = WhatIf(RunStore(), finetuned)
    heavy = Edit(sparsity=0.9, criterion="random")
    first = session.evaluate(heavy)
    assert first["kl"] > 0 and not first["cached"]
    again = session.evaluate(heavy)
    assert again["cached"] and again["value"] == first["value"] and again["seconds"] == 0.0
    estimate = session.evaluate(heavy, full=False)
    assert estimate["examples"] == min(len(session.dev), 200) and not estimate["full"]
    assert estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"]


def test_bad_edits_are_refused_with_the_fix(finetuned):
    session = WhatIf(RunStore(), finetuned)
    with pytest.raises(ConfigError, match="no head 5.0"):
        session.evaluate(Edit(heads=((5, 0),)))
    with pytest.raises(ConfigError, match="every layer dropped"):
        session.evaluate(Edit(layers=(0, 1)))
    with pytest.raises(ConfigError, match="LAYER.HEAD"):
        parse_heads("3")
    with pytest.raises(ConfigError, match="LAYER:SHARE"):
        parse_ffn("0-0.5")
    with pytest.raises(ConfigError, match="must be in"):
        apply_edit_(copy.deepcopy(session.model), Edit(sparsity=1.0))
    with pytest.raises(ConfigError, match="draws only the random criterion"):  # a flag is honoured or refused
        session.evaluate(Edit(sparsity=0.5, seed=3))


def test_the_whatif_command(finetuned, capsys):
    assert main(["whatif", finetuned, "--heads", "0.0,0.1", "--sparsity", "0.5", "--latency", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["edit"]["heads"] == [[0, 0], [0, 1]] and out["edit"]["sparsity"] == 0.5
    assert len(out["layer_sparsity"]) == 2 and out["latency"]["edited_ms"] > 0 and np.isfinite(out["value"])


def test_movement_scores_of_a_movement_run_rebuild_its_masks(tiny_models, sentiment_files, finetuned):
    from analysis.methods.pruning import PruneConfig

    train, evaluation = sentiment_files
    cfg = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation),
                                     "epochs": 2, "batch_size": 8, "method": "movement", "sparsity": 0.6})
    rec = jobs.execute("prune", cfg).record
    session = WhatIf(RunStore(), rec.run_id)
    assert session.has_movement_scores
    # the run's own masks are the top 40% of its scores in each tensor: re-thresholding at 0.6 changes nothing
    same = session.evaluate(Edit(sparsity=0.6, criterion="movement", scope="per-tensor"))
    assert same["agreement"] == 1.0 and same["kl"] == pytest.approx(0, abs=1e-9)
    assert same["encoder_sparsity"] == pytest.approx(0.6, abs=0.005)
    more = session.evaluate(Edit(sparsity=0.9, criterion="movement", scope="per-tensor"))
    assert more["encoder_sparsity"] == pytest.approx(0.9, abs=0.005)
    with pytest.raises(ConfigError, match="stored no movement scores"):
        WhatIf(RunStore(), finetuned).evaluate(Edit(sparsity=0.5, criterion="movement"))
