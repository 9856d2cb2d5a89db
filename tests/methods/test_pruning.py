"""Invariant suite over the pruning registry, on tiny random models of every family."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from analysis.core.config import FinetuneConfig
from analysis.core.errors import ConfigError
from analysis.methods.pruning import PRUNING_METHODS, PruneConfig
from analysis.methods.pruning.masks import ScheduledMaskHook, check_masks_fit, magnitude_scores, select
from analysis.methods.pruning.unstructured import prunable_params
from analysis.models import loading as models
from analysis.models.arch import Arch
from analysis.models.compact import record_structure, remove_ffn_neurons_
from analysis.models.heads import HeadGates, remove_heads_
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore
from analysis.training.loop import fit
from tests.conftest import FAMILIES


def prune_config(tiny_models, files, method, sparsity, family="bert", **extra):
    train, evaluation = files
    return PruneConfig.from_flat({}, {"model": str(tiny_models[family]), "dataset": str(train),
                                      "eval_file": str(evaluation), "epochs": 1, "batch_size": 16,
                                      "method": method, "sparsity": sparsity, **extra})


def batch(n=3, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[0, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


def test_every_registered_method_declares_what_the_suite_checks():
    for name in PRUNING_METHODS.names():
        cls = PRUNING_METHODS.get(name)
        assert cls.__doc__ and isinstance(cls.order, int) and 0 < cls.encoder_share <= 1, name
        assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen, name


def check_reached_sparsity(method: str, report: dict, sparsity: float) -> None:
    """The invariant every method keeps, as its class declares it: a masking method reaches the sparsity in every
    tensor (within 0.5 points) and removes nothing; a removing one removes `encoder_share` x sparsity of the encoder."""
    cls = PRUNING_METHODS.get(method)
    if not cls.removes:
        for name, t in report["tensors"].items():
            assert abs(t["sparsity"] - sparsity) <= 0.005, name
        assert report["removed_params"] == 0
    else:
        assert report["removed_params"] > 0 and report["encoder_masked_sparsity"] == 0
        assert abs(report["encoder_sparsity"] - cls.encoder_share * sparsity) < 0.01


@pytest.mark.parametrize("method", PRUNING_METHODS.names())
def test_requested_sparsity_is_reached_and_measured(tiny_models, sentiment_files, method):
    rec = jobs.execute("prune", prune_config(tiny_models, sentiment_files, method, 0.5)).record
    assert rec.status == "done"
    report = RunStore().load_artifact_json(rec.run_id, "sparsity")
    check_reached_sparsity(method, report, 0.5)
    # the stored model loads back (compacted ones through their recorded structure) and predicts the same
    reloaded = models.load_encoder_classifier(str(rec.path / "model"), 2)
    stored = RunStore().load_arrays(rec.run_id, "predictions")["outputs"]
    from analysis.runs.finetune import load_inputs
    from analysis.training.loop import predict

    inputs = load_inputs(prune_config(tiny_models, sentiment_files, method, 0.5).model,
                         prune_config(tiny_models, sentiment_files, method, 0.5).data, 0, need_train=False)
    again = predict(reloaded, inputs.eval, inputs.task, 64, True, torch.device("cpu"))
    assert np.allclose(again, stored, atol=2e-3)  # both in bf16: equal up to bf16 rounding


def test_select_at_zero_is_the_identity_and_exact_counts(tiny_models):
    model = models.load_encoder_classifier(str(tiny_models["bert"]), 2)
    params = prunable_params(model)
    for scope in ("per-tensor", "global"):
        assert all(m.all() for m in select(magnitude_scores(params), 0.0, scope).values())
    masks = select(magnitude_scores(params), 0.7, "per-tensor")
    for name, m in masks.items():
        assert int((~m).sum()) == round(0.7 * m.numel())
    with pytest.raises(ConfigError, match="sparsity must be in"):
        select(magnitude_scores(params), 1.0, "per-tensor")


@pytest.mark.parametrize("method", ["heads", "ffn", "layers"])
def test_structured_at_sparsity_zero_is_the_identity(tiny_models, sentiment_files, method):
    rec = jobs.execute("prune", prune_config(tiny_models, sentiment_files, method, 0.0, options={"retrain": False})).record
    teacher = models.load_encoder_classifier(str(RunStore().require(rec.summary["teacher"]).path / "model"), 2)
    pruned = models.load_encoder_classifier(str(rec.path / "model"), 2)
    x = batch()
    assert torch.allclose(logits(teacher, x), logits(pruned, x), atol=1e-6)


def test_pruned_weights_stay_zero_through_training(tiny_models, sentiment_files):
    from analysis.runs.finetune import load_inputs

    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(sentiment_files[0]),
                                        "eval_file": str(sentiment_files[1]), "epochs": 3, "batch_size": 8})
    inputs = load_inputs(cfg.model, cfg.data, 0)
    params = prunable_params(inputs.model)
    hook = ScheduledMaskHook(params, magnitude_scores, 0.6, "per-tensor", "one-shot", 1, 0.0, 1.0)
    fit(inputs.model, inputs.train, inputs.eval, inputs.task, cfg.train, 0, torch.device("cpu"), [hook])
    for name, p in params.items():
        assert torch.equal(p.detach() == 0, ~hook.masks[name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_all_ones_gates_are_the_identity(tiny_models, family):
    model = models.load_encoder_classifier(str(tiny_models[family]), 2)
    x = batch()
    plain = logits(model, x)
    with HeadGates(model):
        assert torch.equal(logits(model, x), plain)


@pytest.mark.parametrize("family", FAMILIES)
def test_gates_match_hand_zeroed_heads_and_compaction(tiny_models, family):
    model = models.load_encoder_classifier(str(tiny_models[family]), 2)
    arch, x = Arch(model), batch()
    off = {0: [1, 3], 1: [0]}
    with HeadGates(model) as gates:
        for layer, heads in off.items():
            for h in heads:
                gates.gates[layer, h] = 0.0
        gated = logits(model, x)
    zeroed = copy.deepcopy(model)  # the classifier head is new: copy it rather than reload
    with torch.no_grad():
        for layer, heads in off.items():
            for h in heads:
                Arch(zeroed).linear(layer, "attn_out").weight[:, h * arch.head_dim:(h + 1) * arch.head_dim] = 0
    assert torch.allclose(gated, logits(zeroed, x), atol=1e-6)
    keep = {layer: [h for h in range(arch.num_heads) if h not in heads] for layer, heads in off.items()}
    remove_heads_(model, keep)
    assert Arch(model).linear(0, "query").out_features == 2 * arch.head_dim
    assert torch.allclose(logits(model, x), gated, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_ffn_compaction_matches_masked_neurons(tiny_models, family, tmp_path):
    model = models.load_encoder_classifier(str(tiny_models[family]), 2)
    x = batch()
    keep = {0: torch.arange(0, 64, 2), 1: torch.arange(10, 40)}
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for layer, idx in keep.items():
            drop = torch.ones(64, dtype=torch.bool)
            drop[idx] = False
            Arch(masked).linear(layer, "ffn_out").weight[:, drop] = 0
    remove_ffn_neurons_(model, keep)
    assert torch.allclose(logits(model, x), logits(masked, x), atol=1e-5)
    record_structure(model)
    model.save_pretrained(tmp_path, safe_serialization=True)
    reloaded = models.load_encoder_classifier(str(tmp_path), 2)
    assert torch.allclose(logits(reloaded, x), logits(model, x), atol=1e-6)


def test_bad_sparsity_and_unknown_method(tiny_models, sentiment_files):
    with pytest.raises(ConfigError, match="sparsity.*must be in \\[0, 1\\)"):
        prune_config(tiny_models, sentiment_files, "sparsebert", 1.0)
    with pytest.raises(ConfigError, match="unknown pruning method 'prune-it-all'"):
        jobs.execute("prune", prune_config(tiny_models, sentiment_files, "prune-it-all", 0.5))
    assert RunStore().list() == []


def test_teacher_from_another_task_is_refused(tiny_models, sentiment_files, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("text,label\n" + "".join(f"w{i} words,{i % 2}\n" for i in range(20)))
    teacher = jobs.execute("finetune", FinetuneConfig.from_flat({}, {
        "model": str(tiny_models["bert"]), "dataset": str(other), "eval_file": str(other), "epochs": 1})).record
    before = len(RunStore().list())
    with pytest.raises(ConfigError, match="was fine-tuned on .*other.csv"):
        jobs.execute("prune", prune_config(tiny_models, sentiment_files, "sparsebert", 0.5, teacher=teacher.run_id))
    assert len(RunStore().list()) == before  # nothing written


def test_teacher_with_another_tokenizer_is_refused(tiny_models, sentiment_files, tmp_path):
    import shutil

    folder = tmp_path / "othertok"
    shutil.copytree(tiny_models["bert"], folder)
    vocab = (folder / "vocab.txt").read_text().splitlines()
    vocab[2000], vocab[2001] = vocab[2001], vocab[2000]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer.json").unlink()
    teacher = jobs.execute("finetune", FinetuneConfig.from_flat({}, {
        "model": str(folder), "dataset": str(sentiment_files[0]), "eval_file": str(sentiment_files[1]),
        "epochs": 1})).record
    with pytest.raises(ConfigError, match="different tokenizer"):
        jobs.execute("prune", prune_config(tiny_models, sentiment_files, "sparsebert", 0.5, teacher=teacher.run_id))


def test_a_mask_that_does_not_fit_is_refused(tiny_models):
    model = models.load_encoder_classifier(str(tiny_models["bert"]), 2)
    params = prunable_params(model)
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in params.items()}
    check_masks_fit(params, masks)
    name = next(iter(masks))
    with pytest.raises(ConfigError, match="has shape"):
        check_masks_fit(params, {**masks, name: torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="do not fit this model"):
        check_masks_fit(params, {"bogus.weight": torch.ones(1, dtype=torch.bool)})


def test_cached_teacher_outputs_give_the_same_loss(tiny_models, sentiment_files):
    """Epoch 2 reads the teacher from the cache; the distillation terms must match a fresh forward."""
    from analysis.data.tokens import collate
    from analysis.runs.finetune import load_inputs
    from analysis.training.distill import DistillHook, DistillWeights, TeacherCache
    from analysis.training.loop import TrainState

    cfg = prune_config(tiny_models, sentiment_files, "sparsebert", 0.5)
    inputs = load_inputs(cfg.model, cfg.data, 0)
    teacher = copy.deepcopy(inputs.model)
    hook = DistillHook(teacher, inputs.task, DistillWeights(), cache_key="test-key")
    state = TrainState(inputs.model, None, cfg.train, 1)
    hook.on_train_begin(state)
    idx = np.array([3, 0, 7])
    batch = collate(inputs.train, idx, 0, True)
    state.batch_indices = idx
    fresh = hook.teacher_outputs(state, batch)
    assert set(TeacherCache.for_key("test-key").items) == {0, 3, 7}
    cached = hook.teacher_outputs(state, batch)
    assert torch.allclose(cached.logits, fresh.logits, atol=2e-2)
    mask = batch["attention_mask"].float()
    for a, b in zip(cached.hidden, fresh.hidden):
        assert torch.allclose(a * mask[:, :, None], b * mask[:, :, None], rtol=2e-2, atol=2e-2)
    hook.on_train_end(state)


def test_given_masks_are_retrained_and_bad_mask_files_refused_before_anything_is_written(
        tiny_models, sentiment_files, tmp_path):
    from safetensors.torch import save_file

    from analysis.core.errors import PruneScopeError
    from analysis.store.index import RunStore

    first = jobs.execute("prune", prune_config(tiny_models, sentiment_files, "magnitude", 0.7)).record
    store = RunStore()
    ticket = {k: torch.from_numpy(v) for k, v in store.load_arrays(first.run_id, "masks").items()}
    again = jobs.execute("prune", prune_config(tiny_models, sentiment_files, "random", 0.7,
                                               options={"masks": first.run_id})).record
    model = models.load_encoder_classifier(str(again.path / "model"), 2)
    for name, p in prunable_params(model).items():
        assert torch.equal(p.detach() != 0, ticket[name].bool()), name  # the random scores were not used

    before = len(store.list())
    bad = tmp_path / "bad.safetensors"
    save_file({"encoder.layer.0.attention.self.query.weight": torch.ones(3, 3)}, str(bad))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    for source, message in ((str(bad), "do not fit this model"), (str(garbage), "not a readable safetensors"),
                            (str(tmp_path / "none.safetensors"), "does not exist"),
                            ("0123456789abcdef", "no run")):
        with pytest.raises(PruneScopeError, match=message):
            jobs.execute("prune", prune_config(tiny_models, sentiment_files, "magnitude", 0.7,
                                               options={"masks": source}))
    with pytest.raises(ConfigError, match="does not take --masks"):
        jobs.execute("prune", prune_config(tiny_models, sentiment_files, "movement", 0.7,
                                           options={"masks": first.run_id}))
    assert len(store.list()) == before  # nothing written


def _head_pruned_pair(tiny_models, sentiment_files, keep):
    """(inputs, teacher with 4 heads a layer, student with only the heads `keep` of each layer, copied from it)."""
    from analysis.runs.finetune import load_inputs

    cfg = prune_config(tiny_models, sentiment_files, "sparsebert", 0.5)
    inputs = load_inputs(cfg.model, cfg.data, 0)
    teacher = copy.deepcopy(inputs.model)
    remove_heads_(inputs.model, {layer: list(keep) for layer in range(Arch(teacher).num_layers)})
    return cfg, inputs, teacher


def test_attention_distillation_refuses_a_student_with_fewer_heads_unless_its_heads_are_mapped(
        tiny_models, sentiment_files, recwarn):
    from analysis.data.tokens import collate
    from analysis.training.distill import Capture, DistillHook, DistillWeights, attention_term
    from analysis.training.loop import TrainState

    cfg, inputs, teacher = _head_pruned_pair(tiny_models, sentiment_files, keep=(1, 2))
    state = TrainState(inputs.model, None, cfg.train, 1)
    with pytest.raises(ConfigError, match=r"student layer 0 has 2 head\(s\) and teacher layer 0 has 4.*"
                                          r"--attention-weight 0.*--map-heads"):
        DistillHook(teacher, inputs.task, DistillWeights()).on_train_begin(state)
    for bad in ([[1], [1, 2]], [[1, 2], [1, 7]]):  # too few heads; a head the teacher lacks
        with pytest.raises(ConfigError, match="head map of student layer"):
            DistillHook(teacher, inputs.task, DistillWeights(), head_map=bad).on_train_begin(state)

    batch = collate(inputs.train, np.arange(8), 0, True)
    mapped = DistillHook(teacher, inputs.task, DistillWeights(), head_map=[[1, 2], [1, 2]])
    mapped.on_train_begin(state)
    inputs.model.train()
    total = mapped.loss(state, batch, torch.from_numpy(inputs.train.labels[:8]), inputs.model(**batch),
                        torch.zeros(()), torch.zeros(()))
    assert torch.isfinite(total) and mapped.last_terms["attention"] > 0
    mapped.on_train_end(state)
    # layer 0 reads the same embeddings in both, so its kept heads score exactly as the teacher heads they came from
    student, reference = Capture(inputs.model), Capture(teacher)
    with torch.no_grad():
        inputs.model.eval()(**batch), teacher.eval()(**batch)
    pair = batch["attention_mask"].float()[:, None, :, None] * batch["attention_mask"].float()[:, None, None, :]
    assert attention_term(student, reference, pair, [0], [[1, 2]]) < 1e-10
    assert attention_term(student, reference, pair, [0], [[2, 3]]) > 1e-4  # the wrong heads do not match
    student.remove(), reference.remove()

    unweighted = DistillHook(teacher, inputs.task, DistillWeights(attention=0.0))  # no attention loss: allowed
    unweighted.on_train_begin(state)
    inputs.model.train()
    unweighted.loss(state, batch, torch.from_numpy(inputs.train.labels[:8]), inputs.model(**batch),
                    torch.zeros(()), torch.zeros(()))
    assert unweighted.last_terms["attention"] == 0.0 and unweighted.last_terms["hidden"] > 0
    unweighted.on_train_end(state)
    assert not [w for w in recwarn if "target size" in str(w.message)]  # nothing was broadcast


def test_small_dense_with_fewer_heads_distils_attention_only_through_its_head_map(tiny_models, sentiment_files,
                                                                                  recwarn):
    used = {}
    for map_heads in (False, True):
        cfg = prune_config(tiny_models, sentiment_files, "small-dense", 0.9, options={"map_heads": map_heads})
        record = jobs.execute("prune", cfg, save_weights=False).record
        structure = RunStore().load_artifact_json(record.run_id, "structure")
        used[map_heads] = (structure["heads_per_layer"], structure["attention_loss_used"])
    assert used == {False: (1, False), True: (1, True)}  # one head of four kept (tiny model at 0.9)
    assert not [w for w in recwarn if "target size" in str(w.message)]
