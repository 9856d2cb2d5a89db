"""Shared fixtures: a private store per test, tiny random models of every family, small data files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

FAMILIES = ("bert", "roberta", "distilbert", "electra")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the real pretrained model and real data (runs in CI)")


@pytest.fixture(autouse=True)
def private_store(tmp_path, tmp_path_factory, monkeypatch):
    """Every test gets its own empty store, so tests never see each other's runs."""
    root = tmp_path / "runs"
    monkeypatch.setenv("PRUNESCOPE_STORE", str(root))
    monkeypatch.setenv("PRUNESCOPE_OFFLINE", "1")
    # the machine-wide cache (the precision probe) of this test session, shared with the processes tests start
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path_factory.getbasetemp() / "machine-cache"))
    # the tiny models and data files live in pytest's temp folders: allow them for queued launches
    monkeypatch.setenv("PRUNESCOPE_ALLOWED_PATHS", str(tmp_path_factory.getbasetemp()))
    return root


@pytest.fixture
def no_stray_workers(private_store):
    """A failing test must not leave a detached worker training in the background."""
    yield
    import signal

    from analysis.core.processes import signal_group
    from analysis.runs.queue import JobQueue
    from analysis.store.index import RunStore

    with JobQueue(RunStore(private_store))._db() as db:
        pids = [row["pid"] for row in db.execute("SELECT pid FROM workers")]
    for pid in pids:
        signal_group(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The embedded default model's tokenizer files, reused by the tiny models."""
    from analysis.models.loading import default_model_path

    src = default_model_path()
    out = tmp_path_factory.mktemp("tokenizer")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return out


def tiny_config(family: str):
    from transformers import AutoConfig

    common = dict(vocab_size=30522, max_position_embeddings=512, pad_token_id=0)
    if family == "distilbert":
        return AutoConfig.for_model("distilbert", dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common)
    extra = {"embedding_size": 16} if family == "electra" else {}
    if family == "roberta":
        common["max_position_embeddings"] = 514  # RoBERTa offsets positions by padding_idx + 1
    return AutoConfig.for_model(family, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, type_vocab_size=2, **common, **extra)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """A saved tiny random checkpoint folder (2 layers, 4 heads, hidden 32) per family, fixed seed."""
    from transformers import AutoModel

    out = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(f"tiny-{family}")
        AutoModel.from_config(tiny_config(family)).save_pretrained(folder, safe_serialization=True)
        for file in tokenizer_dir.iterdir():
            shutil.copy(file, folder / file.name)
        out[family] = folder
    return out


@pytest.fixture
def sentiment_files(tmp_path) -> tuple[Path, Path]:
    """A tiny, learnable CSV sentiment task (train, eval)."""
    pos = ["a great film", "wonderful and moving", "i loved it", "brilliant acting", "superb story", "so good"]
    neg = ["a terrible film", "boring and dull", "i hated it", "awful acting", "weak story", "so bad"]
    rows = [(t, 1) for t in pos] + [(t, 0) for t in neg]
    train, evaluation = tmp_path / "train.csv", tmp_path / "eval.csv"
    body = "".join(f'"{t}",{y}\n' for t, y in rows * 4)
    train.write_text("text,label\n" + body, encoding="utf-8")
    evaluation.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    return train, evaluation


@pytest.fixture
def finetuned(tiny_models, sentiment_files):
    """The run id of a tiny BERT fine-tuned (2 epochs, lr 1e-3: it learns the tiny task) with its weights kept."""
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs

    train, evaluation = sentiment_files
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                        "eval_file": str(evaluation), "epochs": 2, "batch_size": 8, "lr": 1e-3})
    return jobs.execute("finetune", cfg).record.run_id
