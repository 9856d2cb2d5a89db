"""Loading models: the embedded default, any local HF folder, a hub id when online; and the baselines (the BiLSTM,
the embedding bag).

Safety: weights load from safetensors only (never a pickle) and `trust_remote_code` is never set.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from analysis.core import settings
from analysis.core.config import BASELINE_MODELS, ModelConfig
from analysis.core.errors import ModelError
from analysis.core.settings import default_model_path  # noqa: F401 (re-exported)
from analysis.models.arch import Arch, family_of
from analysis.models.embedding_bag import (  # noqa: F401 (re-exported)
    EmbeddingBagClassifier,
    build_embedding_bag,
    is_embedding_bag_folder,
    load_embedding_bag,
    save_embedding_bag,
)
from analysis.models.lstm import ClassifierOutput, LSTMClassifier, build_lstm, project_embeddings  # noqa: F401 (re-exported)

PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def resolve(name: str) -> str:
    """'default' -> the embedded folder; an existing folder -> checked; anything else -> a hub id."""
    if name == "default":
        return str(default_model_path())
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        check_checkpoint_folder(path)
        return str(path.resolve())
    if not settings.hub_online():
        raise ModelError(
            f"model {name!r} is neither 'default' nor a local folder, and the hub is offline",
            fix="pass --model default or the path of a local checkpoint folder",
        )
    return name


def check_checkpoint_folder(path: Path) -> None:
    """Refuse folders that are missing, pickle-only or hold unreadable safetensors, before any loading."""
    if not path.is_dir():
        raise ModelError(f"checkpoint folder {str(path)!r} does not exist", fix="check the --model path")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json", fix="point --model at a Hugging Face checkpoint folder")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickles = [p for p in PICKLE_FILES if (path / p).exists()]
        problem = f"{path} holds only pickle weights ({', '.join(pickles)})" if pickles else f"{path} has no weights"
        raise ModelError(
            problem + "; PruneScope loads safetensors only",
            fix="convert it once with `model.save_pretrained(folder, safe_serialization=True)` in a trusted session",
        )
    from safetensors import safe_open

    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as fh:
                fh.keys()
        except Exception as exc:  # safetensors raises its own error types for truncated/garbled headers
            raise ModelError(f"{file} is not a readable safetensors file ({exc})", fix="re-save or re-download it") from None


def load_tokenizer(name: str):
    return _tokenizer_from(resolve(name), name)


def _tokenizer_from(path: str, name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer of {name!r}: {exc}", fix="check the model folder") from None


def load_encoder_classifier(name: str, num_labels: int) -> nn.Module:
    """A HF sequence classifier on top of a pretrained encoder (a fresh head where the checkpoint has none)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        raise ModelError(f"cannot read the config of {name!r}: {exc}", fix="check config.json") from None
    try:
        family_of(config.model_type)
    except ModelError as exc:
        raise ModelError(exc.problem, exc.fix, where=name) from None
    config.num_labels = num_labels
    config.problem_type = "regression" if num_labels == 1 else "single_label_classification"
    from analysis.models.compact import STRUCTURE_KEY

    structure = getattr(config, STRUCTURE_KEY, None)
    if structure:
        return load_compacted(Path(path), config, structure)
    try:
        with quiet_transformers():  # "newly initialised head" warnings are expected for a new task
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, use_safetensors=True, trust_remote_code=False, ignore_mismatched_sizes=True,
                output_loading_info=True,
            )
    except Exception as exc:
        raise ModelError(f"cannot load model weights from {name!r}: {exc}", fix="check the checkpoint") from None
    check_loading_info(info, model.base_model_prefix, name)
    return model


ENCODER_PARTS = ("embeddings", "encoder", "transformer", "embeddings_project")  # not the pooler or a task head


def check_loading_info(info: dict, prefix: str, name: str) -> None:
    """Only a task head may be new or resized: an encoder tensor that is missing, unexpected or of another shape
    means config.json and the weights disagree, and the model would silently train from random weights."""
    def encoder(key: str) -> bool:
        return key.removeprefix(prefix + ".").split(".")[0] in ENCODER_PARTS

    mismatched = [m for m in info.get("mismatched_keys", ()) if encoder(m[0])]
    missing = sorted(k for k in info.get("missing_keys", ()) if encoder(k))
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if encoder(k))
    if not (mismatched or missing or unexpected):
        return
    parts = [f"{len(mismatched)} of another shape (e.g. {mismatched[0][0]}: weights {tuple(mismatched[0][1])}, "
             f"config {tuple(mismatched[0][2])})"] if mismatched else []
    parts += [f"{len(missing)} missing from the weights (e.g. {missing[0]})"] if missing else []
    parts += [f"{len(unexpected)} not in the config (e.g. {unexpected[0]})"] if unexpected else []
    raise ModelError(f"the weights of {name!r} do not match its config.json: encoder tensors " + "; ".join(parts),
                     fix="use the config.json saved with these weights (hidden size, layers, vocabulary)")


def load_compacted(path: Path, config, structure: dict) -> nn.Module:
    """A checkpoint whose heads/FFN were physically removed: build, shrink to the structure, load strictly."""
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from analysis.models.compact import apply_structure_

    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_config(config)
    apply_structure_(model, structure)
    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(file)))
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match its recorded structure: {exc}", fix="re-save the model") from None
    return model


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info/warning chatter and progress bars (they would drown our own bar)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:  # restore the previous state (these blocks nest: a teacher is loaded inside a run)
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def max_tokens(model: nn.Module) -> int | None:
    """The longest input a model's position embeddings allow (RoBERTa reserves two positions)."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None) if config is not None and not isinstance(config, dict) else None
    if limit is None:
        return None
    return int(limit) - (2 if getattr(config, "model_type", "") == "roberta" else 0)


def fingerprint(name: str) -> str:
    """A short content hash of a model's config and weight headers, for provenance and run ids."""
    if name in BASELINE_MODELS:
        return name
    path = Path(resolve(name))
    if not path.is_dir():
        return f"hub:{name}"
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for file in sorted(path.glob("*.safetensors")):
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
        with open(file, "rb") as fh:  # the header holds every tensor's name, dtype, shape and offsets
            digest.update(fh.read(1 << 16))
    return digest.hexdigest()[:16]


# the baselines (`BASELINE_MODELS`): --model value -> builder(model config, tokenizer, num_labels)
def pretrained_word_embeddings(name: str) -> torch.Tensor:
    """The word-embedding table of a pretrained model (the baselines' tokenizer), as float32."""
    return Arch(load_encoder_classifier(name, 2)).word_embeddings().weight.detach().float()


def _lstm(cfg: ModelConfig, tokenizer: object, num_labels: int) -> nn.Module:
    pretrained = cfg.lstm_embeddings == "pretrained"
    return build_lstm(cfg, tokenizer, num_labels, pretrained_word_embeddings(cfg.tokenizer) if pretrained else None)


def _embedding_bag(cfg: ModelConfig, tokenizer: object, num_labels: int) -> nn.Module:
    return build_embedding_bag(cfg, tokenizer, num_labels, pretrained_word_embeddings(cfg.tokenizer))


BASELINE_BUILDERS: dict[str, Callable[[ModelConfig, object, int], nn.Module]] = {
    "lstm": _lstm, "embedding-bag": _embedding_bag,
}


def build_model(cfg: ModelConfig, num_labels: int) -> tuple[nn.Module, object]:
    """(model, tokenizer) for a run: a pretrained encoder classifier, or a baseline on a tokenizer's vocabulary."""
    tokenizer = load_tokenizer(cfg.model if cfg.is_transformer else cfg.tokenizer)
    if cfg.is_transformer:
        return load_encoder_classifier(cfg.model, num_labels), tokenizer
    return BASELINE_BUILDERS[cfg.model](cfg, tokenizer, num_labels), tokenizer


def is_baseline(model: nn.Module) -> bool:
    """Whether a built model is one of the baselines (no encoder: no Arch adapter, no hidden states)."""
    return isinstance(model, (LSTMClassifier, EmbeddingBagClassifier))


def load_saved_model(folder: Path, num_labels: int) -> tuple[nn.Module, object]:
    """(model, tokenizer) of a stored run's model folder: a saved embedding bag (weights, shape and tokenizer
    files, no config.json), or a HF classifier (safetensors only)."""
    if is_embedding_bag_folder(folder):
        return load_embedding_bag(folder), _tokenizer_from(str(folder), str(folder))
    return load_encoder_classifier(str(folder), num_labels), load_tokenizer(str(folder))
