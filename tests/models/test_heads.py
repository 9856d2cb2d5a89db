"""Heads and attributions on tiny random models of every family: gate importance (Michel and integrated
gradients), completeness of attributions within the reported delta, attention maps, side by side, the
`heads` / `explain` commands and their errors, truncation warnings."""

import copy
import json
import warnings

import numpy as np
import pytest
import torch

from analysis.cli import base as cli
from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.methods.interpret.attributions import (
    Explained,
    TruncationWarning,
    attention_maps,
    encode_text,
    explain,
    explain_side_by_side,
    token_attributions,
)
from analysis.methods.pruning import PruneConfig
from analysis.models import loading as models
from analysis.models.arch import Arch
from analysis.models.heads import HeadGates, gate_integrated_gradients, head_importance, remove_heads_
from analysis.runs import experiment as jobs
from analysis.runs.heads import HeadsConfig, example_losses
from analysis.store.index import RunStore
from tests.conftest import FAMILIES

TEXT = "a great film with wonderful acting"


def tiny(tiny_models, family, scale=1.0):
    """A tiny random classifier; `scale` enlarges the classifier weights so outputs differ visibly."""
    torch.manual_seed(0)
    model = models.load_encoder_classifier(str(tiny_models[family]), 2).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "classifier" in name or "pre_classifier" in name:
                p.mul_(scale)
    return model, models.load_tokenizer(str(tiny_models[family]))


def labelled(n=6, t=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[0, 6:] = 0
    return [{"input_ids": torch.randint(1000, 2000, (n, t), generator=g), "attention_mask": mask,
             "labels": torch.tensor([0, 1] * (n // 2))}]


def gate_outputs(model, batch, value):
    """Per-example losses with every per-example gate set to `value` (0: all heads off, 1: the model)."""
    with HeadGates(model) as gates, torch.no_grad():
        gates.example_gates = torch.full((len(batch["labels"]),) + tuple(gates.gates.shape), float(value))
        return example_losses(2)(model, batch).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_all_ones_gates_are_the_identity_also_per_example(tiny_models, family):
    model, _ = tiny(tiny_models, family)
    batch = labelled()[0]
    with torch.no_grad():
        plain = example_losses(2)(model, batch).numpy()
    assert np.array_equal(gate_outputs(model, batch, 1.0), plain)
    assert not np.allclose(gate_outputs(model, batch, 0.0), plain)  # gates really act


@pytest.mark.parametrize("family", FAMILIES)
def test_importance_of_a_zeroed_head_is_zero_for_michel_and_ig(tiny_models, family):
    model, _ = tiny(tiny_models, family, scale=50.0)
    arch = Arch(model)
    with torch.no_grad():
        arch.linear(1, "attn_out").weight[:, 2 * arch.head_dim:3 * arch.head_dim] = 0
    batches = labelled()
    michel = head_importance(model, batches, lambda m, b: example_losses(2)(m, b).mean(), normalise=False)
    ig = gate_integrated_gradients(model, batches, example_losses(2), n_steps=8)
    for scores in (michel, ig.importance):
        assert scores.shape == (2, 4) and scores[1, 2] == 0
        assert (np.delete(scores.reshape(-1), 6) > 0).all()
    assert all(p.requires_grad for p in model.parameters())  # frozen only while scoring


@pytest.mark.parametrize("family", FAMILIES)
def test_gate_attributions_add_up_to_all_on_minus_all_off(tiny_models, family):
    model, _ = tiny(tiny_models, family, scale=50.0)
    batches = labelled()
    ig = gate_integrated_gradients(model, batches, example_losses(2), n_steps=16)
    difference = gate_outputs(model, batches[0], 1.0) - gate_outputs(model, batches[0], 0.0)
    n = len(difference)
    assert np.allclose(ig.totals, difference, atol=1e-5)  # captum's F(1) - F(0) is the real one
    # completeness: the attributions add up to F(1) - F(0) up to the reported delta
    assert abs(ig.mean.sum() * n - (difference + ig.deltas).sum()) < 1e-4
    assert np.abs(ig.deltas).max() < 0.05 * np.abs(difference).max()
    finer = gate_integrated_gradients(model, batches, example_losses(2), n_steps=64)
    assert finer.relative_delta < 0.005  # the delta is the integration error: it shrinks with more steps
    assert np.allclose(finer.importance, ig.importance, rtol=0.05, atol=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_token_attributions_satisfy_completeness_within_the_delta(tiny_models, family):
    model, tokenizer = tiny(tiny_models, family, scale=200.0)
    result = token_attributions(model, tokenizer, TEXT, n_steps=64)
    assert len(result.tokens) == len(result.attributions) and result.tokens[0] in ("[CLS]", "<s>")
    enc = encode_text(model, tokenizer, TEXT)
    ids = enc.batch["input_ids"]
    special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True)).bool()
    baseline = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id))
    rest = {k: v for k, v in enc.batch.items() if k != "input_ids"}
    with torch.no_grad():  # F computed here, independently of captum
        f_x = model(input_ids=ids, **rest).logits[0, result.target].item()
        f_b = model(input_ids=baseline, **rest).logits[0, result.target].item()
    gap = f_x - f_b
    assert abs(gap) > 1e-3  # there is something to attribute
    assert abs(result.attributions.sum() - gap) <= abs(result.delta) + 1e-5
    assert abs(result.delta) < 0.05 * abs(gap)
    assert special[0] and result.attributions[0] == pytest.approx(0.0, abs=1e-7)  # [CLS] is kept in the baseline


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_map_shapes_and_the_model_is_left_alone(tiny_models, family):
    model, tokenizer = tiny(tiny_models, family)
    before = model.config._attn_implementation
    maps = attention_maps(model, tokenizer, TEXT)
    n = len(maps.tokens)
    assert [m.shape for m in maps.maps] == [(4, n, n)] * 2
    assert np.allclose(np.stack(maps.maps).sum(-1), 1.0, atol=1e-5)  # rows are distributions
    assert model.config._attn_implementation == before and before != "eager"
    pruned = copy.deepcopy(model)
    remove_heads_(pruned, {0: [1, 3], 1: [0, 1, 2]})
    small = attention_maps(pruned, tokenizer, TEXT, head_ids=[[1, 3], [0, 1, 2]])
    assert [m.shape for m in small.maps] == [(2, n, n), (3, n, n)]
    assert np.array_equal(small.head(0, 3), small.maps[0][1])
    with pytest.raises(ConfigError, match="not in this model"):
        small.head(0, 0)


def test_side_by_side_dense_vs_pruned(tiny_models):
    model, tokenizer = tiny(tiny_models, "bert", scale=50.0)
    pruned = copy.deepcopy(model)
    remove_heads_(pruned, {0: [0, 1, 2], 1: [1, 2, 3]})
    left = Explained("dense", model, tokenizer)
    right = Explained("pruned", pruned, tokenizer, [[0, 1, 2], [1, 2, 3]])
    both = explain_side_by_side(left, right, TEXT, layer=1, head=0)
    assert both["left"]["tokens"] == both["right"]["tokens"]
    assert both["left"]["target"] == both["right"]["target"] == both["target"]
    assert both["left"]["attention"]["1"]["0"] is not None and both["right"]["attention"]["1"]["0"] is None
    assert both["left"]["attributions"] != both["right"]["attributions"]
    full = explain(right, TEXT)
    assert list(full["attention"]) == ["0", "1"] and list(full["attention"]["1"]) == ["1", "2", "3"]
    three = Explained("three classes", models.load_encoder_classifier(str(tiny_models["bert"]), 3), tokenizer)
    with pytest.raises(ConfigError, match="predicts 2 classes"):
        explain_side_by_side(left, three, TEXT)
    with pytest.raises(ConfigError, match="layer 5 does not exist"):
        explain(left, TEXT, layer=5)


def test_long_text_is_truncated_with_a_warning_saying_how_much(tiny_models):
    model, tokenizer = tiny(tiny_models, "bert")
    text = "good " * 600
    full = len(tokenizer(text)["input_ids"])
    with pytest.warns(TruncationWarning, match=f"has {full} tokens .* at most 512: the last {full - 512} tokens"):
        maps = attention_maps(model, tokenizer, text)
    assert len(maps.tokens) == 512 and maps.cut == full - 512
    with pytest.warns(TruncationWarning, match=f"the last {full - 16} tokens were cut"):
        assert len(token_attributions(model, tokenizer, text, n_steps=4, max_length=16).tokens) == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a short text gives no warning
        attention_maps(model, tokenizer, TEXT)
    with pytest.raises(ConfigError, match="empty"):
        encode_text(model, tokenizer, "   ")


# -- the commands, on real tiny runs ------------------------------------------------------------


def run_cli(capsys, *args):
    code = cli.main([*args, "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out.strip().splitlines()[-1]), out.err


def finetune(tiny_models, sentiment_files, save_weights=True):
    train, evaluation = sentiment_files
    config = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                           "eval_file": str(evaluation), "epochs": 1, "batch_size": 16})
    return jobs.execute("finetune", config, save_weights=save_weights, need_weights=save_weights).record


def test_heads_command_stores_both_scores_and_marks_pruned_heads(tiny_models, sentiment_files, capsys):
    train, evaluation = sentiment_files
    prune = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                       "eval_file": str(evaluation), "epochs": 1, "batch_size": 16,
                                       "method": "heads", "sparsity": 0.5})
    pruned = jobs.execute("prune", prune).record
    kept = RunStore().load_artifact_json(pruned.run_id, "structure")["kept_heads"]
    code, out, _ = run_cli(capsys, "heads", pruned.run_id, "--max-examples", "8", "--ig-examples", "4")
    assert code == 0 and out["status"] == "done" and not out["cached"]
    stored = out["importance"]
    assert stored["examples"] == 8 and stored["ig_examples"] == 4 and stored["target"] == pruned.run_id
    for key in ("michel", "ig"):
        grid = np.array([[np.nan if v is None else v for v in row] for row in stored[key]])
        assert grid.shape == (2, 4)
        for layer in range(2):
            assert [h for h in range(4) if not np.isnan(grid[layer, h])] == sorted(kept[str(layer)])
    arrays = RunStore().load_arrays(out["run_id"], "head_importance")
    assert np.isnan(arrays["michel"]).sum() == 4 and arrays["ig_deltas"].shape == (4,)
    assert out["metrics"]["ig_relative_delta"] < 0.05
    code, again, _ = run_cli(capsys, "heads", pruned.run_id, "--max-examples", "8", "--ig-examples", "4")
    assert code == 0 and again["cached"] and again["run_id"] == out["run_id"]
    from analysis.figures import FIGURES

    built = FIGURES.get("head-importance").build(RunStore(), [pruned.run_id, out["run_id"]])  # the export's view
    assert built.run_ids == [out["run_id"]] and len(built.table) == 8
    assert [t.type for t in built.figure.data] == ["heatmap", "scatter", "heatmap", "scatter"]


def test_explain_command_side_by_side_with_a_truncation_warning(tiny_models, sentiment_files, capsys):
    dense = finetune(tiny_models, sentiment_files)
    code, out, err = run_cli(capsys, "explain", dense.run_id, "--text", "so good " * 300, "--compare",
                             dense.run_id, "--layer", "0", "--head", "1", "--steps", "8", "--max-length", "32")
    assert code == 0 and len(out["models"]) == 2
    assert out["warnings"] and "tokens were cut" in out["warnings"][0] and "tokens were cut" in err
    left = out["models"][0]
    assert len(left["tokens"]) == 32 and list(left["attention"]) == ["0"] and list(left["attention"]["0"]) == ["1"]
    assert np.array(left["attention"]["0"]["1"]).shape == (32, 32)
    assert abs(left["attribution_sum"] - (left["output"] - left["baseline_output"]) - left["delta"]) < 1e-4


def test_bad_input_gives_clear_errors(tiny_models, sentiment_files, capsys):
    code, out, _ = run_cli(capsys, "heads", "nosuchrun")
    assert code == 2 and out["type"] == "StoreError" and "no run 'nosuchrun'" in out["error"] and "Fix:" in out["error"]
    code, out, _ = run_cli(capsys, "explain", "nosuchrun", "--text", "hello")
    assert code == 2 and "no run 'nosuchrun'" in out["error"]
    light = finetune(tiny_models, sentiment_files, save_weights=False)
    code, out, _ = run_cli(capsys, "explain", light.run_id, "--text", "hello")
    assert code == 2 and "no weights" in out["error"] and "kept its weights" in out["error"]
    code, out, _ = run_cli(capsys, "heads", light.run_id)
    assert code == 2 and "no weights" in out["error"]
    probe_like = jobs.execute("heads", HeadsConfig(target=finetune(tiny_models, sentiment_files).run_id,
                                                   max_examples=4, ig_examples=2)).record
    code, out, _ = run_cli(capsys, "explain", probe_like.run_id, "--text", "hello")
    assert code == 2 and "heads run, which holds no model" in out["error"]
    code, out, _ = run_cli(capsys, "heads", "default", "--ig-steps", "1")
    assert code == 2 and "ig_steps" in out["error"]
    code, out, _ = run_cli(capsys, "explain", probe_like.run_id, "--text", "hello", "--steps", "0")
    assert code == 2 and "--steps 0" in out["error"]
    assert [r["kind"] for r in RunStore().list()].count("heads") == 1  # errors wrote nothing


@pytest.mark.slow
def test_heads_on_the_pretrained_default(capsys):
    code, out, _ = run_cli(capsys, "heads", "default", "--max-examples", "16", "--ig-examples", "8")
    assert code == 0 and out["importance"]["dataset"] == "sst2"
    assert np.array(out["importance"]["michel"]).shape == (6, 12)
    assert np.allclose(np.linalg.norm(np.array(out["importance"]["michel"]), axis=1), 1.0)
    assert "seeded random initialisation" in out["importance"]["notes"][0]
