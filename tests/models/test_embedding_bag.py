"""The floor arm: `--model embedding-bag` (mean-pooled pretrained token embeddings, a linear head, no encoder)."""

import numpy as np
import pytest
import torch

from analysis.core.config import FinetuneConfig, ModelConfig
from analysis.core.errors import ConfigError
from analysis.models import loading as models
from analysis.models.embedding_bag import EmbeddingBagClassifier, EmbeddingBagShape


def _bag_config(tiny_models, sentiment_files, **extra) -> FinetuneConfig:
    train, evaluation = sentiment_files
    return FinetuneConfig.from_flat({}, {"model": "embedding-bag", "tokenizer": str(tiny_models["bert"]),
                                         "dataset": str(train), "eval_file": str(evaluation), "epochs": 8,
                                         "batch_size": 8, "lr": 1e-2, **extra})


def test_the_mean_covers_only_the_unmasked_tokens():
    torch.manual_seed(0)
    bag = EmbeddingBagClassifier(EmbeddingBagShape(20, 0, 2, 4, 0.0, False, False)).eval()
    ids = torch.tensor([[3, 5, 7, 0], [9, 0, 0, 0]])
    mask = (ids != 0).long()
    table = bag.embeddings.weight.detach()
    expected = torch.stack([table[[3, 5, 7]].mean(0), table[9]])
    assert torch.allclose(bag.pooled(ids, mask), expected)
    assert torch.allclose(bag(input_ids=ids, attention_mask=mask).logits, bag.classifier(expected))


def test_it_copies_the_tokenizer_models_word_embeddings(tiny_models):
    from analysis.models.arch import Arch

    cfg = ModelConfig(model="embedding-bag", tokenizer=str(tiny_models["bert"]))
    model, tokenizer = models.build_model(cfg, 1)
    source = Arch(models.load_encoder_classifier(str(tiny_models["bert"]), 2)).word_embeddings().weight
    assert isinstance(model, EmbeddingBagClassifier) and models.is_baseline(model)
    assert torch.equal(model.embeddings.weight, source[: len(tokenizer)])
    assert model.config.num_labels == 1 and model.classifier.out_features == 1  # one output: regression
    assert not [n for n, _ in model.named_parameters() if "encoder" in n or "attention" in n]
    frozen, _ = models.build_model(cfg.replace(bag_freeze_embeddings=True), 2)
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]


def test_it_learns_the_tiny_task_and_loads_back_for_evaluation(tiny_models, sentiment_files):
    from analysis.runs import experiment as jobs
    from analysis.runs.finetune import load_inputs
    from analysis.store.index import RunStore
    from analysis.training.evaluate import load_run_model
    from analysis.training.loop import predict

    cfg = _bag_config(tiny_models, sentiment_files)
    record = jobs.execute("finetune", cfg).record
    assert record.metrics["accuracy"] >= 0.9  # 12 balanced examples: chance is 0.5
    folder = record.path / "model"
    assert (folder / "embedding_bag.safetensors").is_file() and not list(folder.glob("*.bin"))
    model, tokenizer, config = load_run_model(RunStore(), record.run_id)
    assert isinstance(model, EmbeddingBagClassifier) and config["model"]["model"] == "embedding-bag"
    inputs = load_inputs(cfg.model, cfg.data, seed=0, need_train=False)
    again = predict(model, inputs.eval, inputs.task, 16, "fp32", torch.device("cpu"))
    stored = RunStore().load_arrays(record.run_id, "predictions")["outputs"]
    assert np.allclose(again, stored, atol=1e-2)  # the run evaluated in its own precision
    assert (again.argmax(1) == stored.argmax(1)).all()
    with pytest.raises(ConfigError, match="embedding-bag baseline, which has no encoder"):
        load_run_model(RunStore(), record.run_id, encoder_only=True)  # probes and head importance


def test_pruning_refuses_it_with_the_way_out(tiny_models, sentiment_files):
    from analysis.methods.pruning.base import PruneConfig

    train, evaluation = sentiment_files
    with pytest.raises(ConfigError, match="'embedding-bag' is a baseline without one.*finetune --model embedding-bag"):
        PruneConfig.from_flat({}, {"model": "embedding-bag", "tokenizer": str(tiny_models["bert"]),
                                   "dataset": str(train), "eval_file": str(evaluation), "sparsity": 0.5})


def test_the_data_scale_study_has_a_floor_arm():
    from analysis.studies.data_scale import ScaleConfig

    study = ScaleConfig.from_flat({}, {"arms": "transformer,embedding-bag", "sizes": "100"})
    run = study.run_config("embedding-bag", 100, 1000, seed=1)
    assert run.model.model == "embedding-bag" and run.model.tokenizer == study.finetune.model.model
    assert run.train.lr == study.lstm_lr and run.data.train_size == 100
