"""Probes: CKA's invariances, transfer near chance on noise and well above on the pre-trained model,
zero importance for a zeroed head, 'not applicable' with a reason, clear errors."""

import numpy as np
import pytest
import torch

from analysis.core.config import DataConfig, FinetuneConfig
from analysis.core.errors import ConfigError, DataError
from analysis.data.tasks import load_split, subsample
from analysis.methods.probes.cka import linear_cka
from analysis.methods.probes.transfer import logistic_accuracy
from analysis.models import loading as models
from analysis.models.heads import head_importance
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore


def test_cka_is_one_on_itself_and_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 40))
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    assert np.isclose(linear_cka(x, x), 1.0)
    assert np.isclose(linear_cka(x, x @ q), 1.0)
    assert np.isclose(linear_cka(x, 3.7 * x), 1.0)
    assert linear_cka(x, rng.normal(size=(300, 40))) < 0.3


def test_transfer_on_random_features_is_near_chance():
    train = subsample(load_split(DataConfig(dataset="mr"), "train"), 2000, seed=0)
    dev = load_split(DataConfig(dataset="mr"), "validation")
    rng = np.random.default_rng(0)
    acc = logistic_accuracy(rng.normal(size=(len(train), 64)), train.labels, rng.normal(size=(len(dev), 64)), dev.labels)
    assert abs(acc - 0.5) < 0.05


@pytest.mark.slow
def test_transfer_on_the_pretrained_model_is_well_above_chance():
    from analysis.methods.probes.features import text_features
    from analysis.runs.probe import load_target

    target = load_target(RunStore(), "default", torch.device("cpu"))
    train = subsample(load_split(DataConfig(dataset="mr"), "train"), 2000, seed=0)
    dev = load_split(DataConfig(dataset="mr"), "validation")
    tr = text_features(target, "mr-train-2000", train.texts[0])[-1]
    dv = text_features(target, "mr-dev", dev.texts[0])[-1]
    assert logistic_accuracy(tr, train.labels, dv, dev.labels) > 0.70


def test_importance_of_a_zeroed_head_is_zero(tiny_models):
    model = models.load_encoder_classifier(str(tiny_models["bert"]), 2)
    from analysis.models.arch import Arch

    arch = Arch(model)
    with torch.no_grad():
        arch.linear(1, "attn_out").weight[:, 2 * arch.head_dim:3 * arch.head_dim] = 0
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(1000, 2000, (4, 9), generator=g),
                "attention_mask": torch.ones(4, 9, dtype=torch.long), "labels": torch.tensor([0, 1, 0, 1])}]

    def loss(m, b):
        return torch.nn.functional.cross_entropy(m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                                 b["labels"])

    imp = head_importance(model, batches, loss, normalise=False)
    assert imp.shape == (2, 4) and imp[1, 2] == 0 and (np.delete(imp.reshape(-1), 6) > 0).all()


def test_probe_run_on_a_fine_tuned_tiny_model(tiny_models, sentiment_files):
    from analysis.runs.probe import ProbeConfig

    train, evaluation = sentiment_files
    rec = jobs.execute("finetune", FinetuneConfig.from_flat({}, {
        "model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation), "epochs": 1})).record
    out = jobs.execute("probe", ProbeConfig(target=rec.run_id, probes=("fidelity", "cka", "mlm", "layer-probe"))).record
    probes = RunStore().load_artifact_json(out.run_id, "probes")
    assert probes["fidelity"] == {"applicable": False, "reason": probes["fidelity"]["reason"]}
    assert "no dense fine-tuned model to compare with" in probes["fidelity"]["reason"]
    assert not probes["mlm"]["applicable"] and "no MLM head" in probes["mlm"]["reason"]
    assert not probes["layer-probe"]["applicable"]  # a user file, not a registered single-sentence task
    cka = probes["cka"]
    assert cka["applicable"] and len(cka["pretrained"]) == 3 and cka["teacher"] is None
    assert all(0 <= v <= 1.0 + 1e-6 for v in cka["pretrained"])
    with pytest.raises(ConfigError, match="was trained on .*not 'sst2'"):  # --task is for targets without one
        jobs.execute("probe", ProbeConfig(target=rec.run_id, probes=("cka",), task="sst2"))


def test_the_cka_sentences_are_drawn_under_the_probe_runs_seed():
    from analysis.methods.probes.cka import PROBE_SENTENCES, probe_texts

    corpus = load_split(DataConfig(dataset="wikitext2"), "train").texts[0]
    first, again, other = probe_texts(0), probe_texts(0), probe_texts(1)
    assert first == again and len(first) == len(other) == PROBE_SENTENCES
    assert set(first) != set(other) and len(set(first) & set(other)) < PROBE_SENTENCES // 2
    assert first != corpus[:PROBE_SENTENCES]  # not the corpus' first lines, whatever the seed


def test_a_probe_runs_seed_reaches_its_cka_sentences(monkeypatch):
    from analysis.methods.probes import cka
    from analysis.runs.probe import ProbeConfig

    monkeypatch.setattr(cka, "PROBE_SENTENCES", 16)
    drawn = []  # the sentences each feature extraction was given (features faked: no forward passes)
    monkeypatch.setattr(cka, "text_features", lambda target, name, texts: drawn.append(texts) or
                        np.random.default_rng(len(drawn)).normal(size=(3, len(texts), 8)))
    results = {}
    for seed in (0, 3):
        config = ProbeConfig(target="default", probes=("cka",), seed=seed)
        assert (jobs.run_id("probe", config) == jobs.run_id("probe", ProbeConfig(target="default", probes=("cka",)))) \
            == (seed == 0)  # the default seed keeps the ids of probe runs made before it existed
        record = jobs.execute("probe", config).record
        results[seed] = RunStore().load_artifact_json(record.run_id, "probes")["cka"]
    assert [r["seed"] for r in results.values()] == [0, 3]
    assert drawn[0] == drawn[1] and drawn[2] == drawn[3]  # the model and its reference read the same sentences
    assert drawn[0] == cka.probe_texts(0) and drawn[2] == cka.probe_texts(3) and drawn[0] != drawn[2]


def test_probe_of_a_missing_run_is_a_clear_error():
    from analysis.runs.probe import ProbeConfig

    with pytest.raises(ConfigError, match="no run 'nope' in the store"):
        jobs.execute("probe", ProbeConfig(target="nope"))
    with pytest.raises(ConfigError, match="unknown probe 'vibes'"):
        ProbeConfig(probes=("vibes",))
    with pytest.raises(DataError, match="unknown dataset .nosuchtask."):
        ProbeConfig(task="nosuchtask")


def test_fidelity_of_a_pruning_run_without_teacher_uses_the_dense_fine_tune(tiny_models, sentiment_files):
    """gradual-magnitude learns from no teacher; its fidelity reference is the dense fine-tune with the same
    model, data and training settings, once that is in the store (never trained by the probe)."""
    from analysis.methods.pruning import PruneConfig
    from analysis.runs.probe import ProbeConfig
    from analysis.runs.prune import teacher_config

    train, evaluation = sentiment_files
    config = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1, "method": "gradual-magnitude",
                                        "sparsity": 0.5})
    pruned = jobs.execute("prune", config).record
    before = jobs.execute("probe", ProbeConfig(target=pruned.run_id, probes=("fidelity",))).record
    assert not RunStore().load_artifact_json(before.run_id, "probes")["fidelity"]["applicable"]
    dense = jobs.execute("finetune", teacher_config(config)).record
    RunStore().delete(before.run_id)
    after = jobs.execute("probe", ProbeConfig(target=pruned.run_id, probes=("fidelity",))).record
    fidelity = RunStore().load_artifact_json(after.run_id, "probes")["fidelity"]
    assert fidelity["applicable"] and fidelity["reference"] == dense.run_id and 0 <= fidelity["agreement"] <= 1
