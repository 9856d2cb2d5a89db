"""Child-Tuning F and D: equivalences, freezing, mask statistics, bad input."""

import numpy as np
import pytest
import torch

from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.methods.finetuning.child_tuning import (
    ChildDOptions,
    ChildFHook,
    child_mask,
    encoder_params,
    fisher_scores,
)
from analysis.runs import experiment as jobs
from analysis.runs.finetune import load_inputs
from analysis.store.index import RunStore


def config(tiny_models, files, method="vanilla", options=None, **flags):
    train, evaluation = files
    return FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 2, "batch_size": 8,
                                         "method": method, "options": options or {}, **flags})


def final_state(cfg):
    rec = jobs.execute("finetune", cfg).record
    from analysis.models.loading import load_encoder_classifier

    return load_encoder_classifier(str(rec.path / "model"), 2).state_dict(), rec


@pytest.mark.parametrize("method", ["child-f", "child-d"])
def test_p_one_is_vanilla_bit_for_bit(tiny_models, sentiment_files, method):
    vanilla, _ = final_state(config(tiny_models, sentiment_files))
    child, _ = final_state(config(tiny_models, sentiment_files, method, {"p": 1.0}))
    assert all(torch.equal(vanilla[k], child[k]) for k in vanilla)


def test_strict_d_never_changes_non_child_encoder_weights(tiny_models, sentiment_files):
    cfg = config(tiny_models, sentiment_files, "child-d", {"p": 0.3, "strict": True})
    inputs = load_inputs(cfg.model, cfg.data, cfg.seed)
    start = {n: p.detach().clone() for n, p in encoder_params(inputs.model).items()}
    trained, rec = final_state(cfg)
    store = RunStore()
    packed = store.load_arrays(rec.run_id, "child_mask")
    shapes = store.load_artifact_json(rec.run_id, "child_mask_shapes")
    moved_children = 0
    for name, shape in shapes.items():
        mask = torch.from_numpy(np.unpackbits(packed[name])[: int(np.prod(shape))].reshape(shape).astype(bool))
        assert torch.equal(trained[name][~mask], start[name][~mask]), name
        moved_children += int((trained[name][mask] != start[name][mask]).sum())
    assert moved_children > 0  # the child network did train


def test_non_strict_d_lets_weight_decay_move_non_child_weights(tiny_models, sentiment_files):
    """The official code's side effect, kept as the default: decoupled weight decay still shrinks them."""
    cfg = config(tiny_models, sentiment_files, "child-d", {"p": 0.3}, weight_decay=0.1)
    inputs = load_inputs(cfg.model, cfg.data, cfg.seed)
    start = {n: p.detach().clone() for n, p in encoder_params(inputs.model).items() if n.endswith("query.weight")}
    trained, _ = final_state(cfg)
    assert any(not torch.equal(trained[n], w) for n, w in start.items())


def test_f_mask_keeps_p_and_is_unbiased():
    torch.manual_seed(0)
    g = torch.randn(200, 50)
    param = torch.nn.Parameter(torch.zeros_like(g))
    hook = ChildFHook({"w": param}, p=0.3, strict=False, seed=1)
    total, kept = torch.zeros_like(g), 0.0
    draws = 2000
    for _ in range(draws):
        param.grad = g.clone()
        hook.before_step(None)
        kept += float(hook.current["w"].float().mean())
        total += param.grad
    assert abs(kept / draws - 0.3) < 0.005
    mean = total / draws
    # E[g * m / p] = g: the standard error of each entry is |g| sqrt((1-p)/(p * draws)) ~ 0.034 |g|
    rel = (mean - g).abs() / (g.abs() * np.sqrt((1 - 0.3) / (0.3 * draws)))
    assert float(rel.mean()) < 1.0 and float((rel < 4.5).float().mean()) > 0.999


def test_d_mask_keeps_exactly_p_of_encoder_parameters(tiny_models, sentiment_files):
    cfg = config(tiny_models, sentiment_files, "child-d", {"p": 0.2})
    inputs = load_inputs(cfg.model, cfg.data, cfg.seed)
    said = []
    scores, cost = fisher_scores(inputs.model, inputs, ChildDOptions(p=0.2), 0, torch.device("cpu"), "fp32",
                                 lambda done, total: said.append((done, total)))
    assert said[-1] == (cost["fisher_batches"], cost["fisher_batches"]) and len(said) == cost["fisher_batches"]
    masks = child_mask(scores, 0.2, "fisher", 0)
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round(0.2 * total)
    assert cost["fisher_examples"] == len(inputs.train) and cost["fisher_seconds"] > 0
    low = child_mask(scores, 0.2, "lowest-fisher", 0)
    flat_scores = torch.cat([s.reshape(-1) for s in scores.values()])
    top = torch.cat([scores[n][masks[n]] for n in masks])
    bottom = torch.cat([scores[n][low[n]] for n in low])
    assert top.min() >= flat_scores.median() >= bottom.max()


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5])
def test_p_outside_range_is_an_error(tiny_models, sentiment_files, p):
    for method in ("child-f", "child-d"):
        with pytest.raises(ConfigError, match="child fraction must be in \\(0, 1\\]"):
            jobs.execute("finetune", config(tiny_models, sentiment_files, method, {"p": p}))
    assert RunStore().list() == []


def test_cross_entropy_fisher_on_regression_is_an_error(tiny_models, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("sentence1,sentence2,score\n" + "".join(f"a{i},b{i},{i % 5 + 0.5}\n" for i in range(16)))
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(f), "eval_file": str(f),
                                        "method": "child-d", "options": {"fisher_loss": "ce"}})
    with pytest.raises(ConfigError, match="cross-entropy Fisher needs class labels"):
        jobs.execute("finetune", cfg)
    assert RunStore().list() == []


def test_mask_from_another_model_is_an_error(tiny_models, sentiment_files):
    _, rec = final_state(config(tiny_models, sentiment_files, "child-d", {"p": 0.3}))
    train, evaluation = sentiment_files
    other = FinetuneConfig.from_flat({}, {"model": str(tiny_models["distilbert"]), "dataset": str(train),
                                          "eval_file": str(evaluation), "method": "child-d",
                                          "options": {"mask_from": rec.run_id}})
    before = len(RunStore().list())
    with pytest.raises(ConfigError, match="masks do not fit this model"):
        jobs.execute("finetune", other)
    assert len(RunStore().list()) == before


def test_weight_change_is_stored_for_every_method(tiny_models, sentiment_files):
    _, rec = final_state(config(tiny_models, sentiment_files))
    change = RunStore().load_artifact_json(rec.run_id, "weight_change")
    layers = {row["layer"] for row in change}
    assert {0, 1} <= layers and all(row["relative_change"] >= 0 for row in change)
    assert any(row["relative_change"] > 0 for row in change if row["layer"] == 0)


def test_study_summary_pairs_by_seed():
    from analysis.studies.child_tuning_study import summarise

    rows = [{"task": "rte", "method": "vanilla", "p": None, "seed": s, "value": v} for s, v in enumerate([0.6, 0.62, 0.58])]
    rows += [{"task": "rte", "method": "child-d", "p": 0.3, "seed": s, "value": v} for s, v in enumerate([0.63, 0.64, 0.6])]
    cells = {c["method"]: c for c in summarise(rows)}
    assert np.isclose(cells["vanilla"]["mean"], 0.6) and np.isclose(cells["child-d"]["mean"], 0.6233333)
    assert np.isclose(cells["child-d"]["diff_mean"], 0.0233333) and cells["child-d"]["diff_n"] == 3
    assert "diff_mean" not in cells["vanilla"]


def test_transfer_sets_smaller_than_the_cap_are_used_whole():
    """The study's transfer_eval_size is a cap: CR's 755-row split is evaluated whole, not an error."""
    from analysis.studies.child_tuning_study import transfer_size

    assert transfer_size("cr", 2000) is None and transfer_size("cr", 100) == 100 and transfer_size("cr", None) is None


def test_a_transfer_evaluation_is_kept_with_the_member_and_not_repeated_on_resume(tiny_models, sentiment_files,
                                                                                    monkeypatch):
    from analysis.studies import child_tuning_study as study

    rec = jobs.execute("finetune", config(tiny_models, sentiment_files, epochs=1)).record
    store = RunStore()
    first = study.transfer_metrics(store, rec.run_id, "cr", 50, "cpu")
    assert first["examples"] == 50 and 0 <= first["accuracy"] <= 1
    monkeypatch.setattr(study, "evaluate_on", lambda *a, **k: pytest.fail("evaluated again"))
    assert study.transfer_metrics(store, rec.run_id, "cr", 50, "cpu") == first  # kept in the run's transfer.json
    with pytest.raises(pytest.fail.Exception):
        study.transfer_metrics(store, rec.run_id, "cr", 60, "cpu")  # another size is another evaluation
