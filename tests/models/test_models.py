import pytest
import torch

from analysis.core.config import FinetuneConfig, ModelConfig
from analysis.core.errors import ModelError
from analysis.models import loading as models
from analysis.models.arch import MODULE_TYPES, Arch
from analysis.runs import experiment as jobs
from tests.conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_loads_and_the_adapter_finds_its_parts(tiny_models, family):
    model = models.load_encoder_classifier(str(tiny_models[family]), 3)
    arch = Arch(model)
    assert arch.num_layers == 2 and arch.num_heads == 4 and arch.head_dim == 8
    linears = arch.linears()
    assert len(linears) == 2 * len(MODULE_TYPES)
    assert all(isinstance(m, torch.nn.Linear) for m in linears.values())
    names = dict(model.named_parameters())
    assert all(prefix + ".weight" in names for prefix in linears)
    assert arch.locate(next(iter(linears)) + ".weight") == (0, "query")


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_one_step(tiny_models, sentiment_files, family):
    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models[family]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 1, "batch_size": 48})
    before = {k: v.clone() for k, v in models.load_encoder_classifier(str(tiny_models[family]), 2).state_dict().items()}
    outcome = jobs.execute("finetune", cfg)
    assert outcome.record.status == "done" and outcome.record.summary["steps"] == 1
    assert 0.0 <= outcome.record.metrics["accuracy"] <= 1.0
    trained = models.load_encoder_classifier(str(outcome.record.path / "model"), 2).state_dict()
    changed = [k for k in before if "encoder" in k or "transformer" in k if not torch.equal(before[k], trained[k])]
    assert changed, "one optimizer step must change the encoder weights"


def test_same_seed_gives_identical_weights(tiny_models, sentiment_files):
    from analysis.runs.finetune import load_inputs
    from analysis.training.loop import fit

    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 2, "batch_size": 8})
    states = []
    for _ in range(2):
        inputs = load_inputs(cfg.model, cfg.data, seed=5)
        fit(inputs.model, inputs.train, inputs.eval, inputs.task, cfg.train, 5, torch.device("cpu"))
        states.append(inputs.model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_lstm_random_and_pretrained_embeddings(tiny_models):
    tok = models.load_tokenizer(str(tiny_models["bert"]))
    cfg = ModelConfig(model="lstm", tokenizer=str(tiny_models["bert"]), lstm_embeddings="pretrained", lstm_hidden=16)
    lstm = models.BASELINE_BUILDERS["lstm"](cfg, tok, 2)
    source = Arch(models.load_encoder_classifier(str(tiny_models["bert"]), 2)).word_embeddings().weight
    assert torch.allclose(lstm.embeddings.weight, source)
    narrow = models.BASELINE_BUILDERS["lstm"](cfg.replace(lstm_embedding_dim=8), tok, 2)
    assert narrow.embeddings.weight.shape == (len(tok), 8)
    ids = torch.tensor([[101, 2307, 102, 0]])
    out = lstm(input_ids=ids, attention_mask=(ids != 0).long())
    assert out.logits.shape == (1, 2) and torch.isfinite(out.logits).all()


def test_pickle_only_checkpoint_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="only pickle weights.*safetensors only"):
        models.resolve(str(tmp_path))


def test_corrupt_safetensors_is_refused(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_models["bert"], folder)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        models.resolve(str(folder))


def test_unknown_model_offline_is_a_clear_error():
    with pytest.raises(ModelError, match="neither 'default' nor a local folder.*offline"):
        models.resolve("some-org/some-model")


def test_unsupported_family_is_a_clear_error(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50)).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="family 'gpt2' is not supported"):
        models.load_encoder_classifier(str(tmp_path), 2)
