"""Property/fuzz tests: random mask files (`--masks FILE`), stored mask artefacts and checkpoint folders.

A mask file of random names, shapes, dtypes and values (or random bytes) gives either masks that fit the
model exactly (bool, one per prunable weight, same shapes) or a clear error naming the file, and nothing
is written to the store. A damaged checkpoint folder is a ModelError before any weights are used.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import torch
from hypothesis import event, given
from hypothesis import strategies as st
from safetensors.torch import save_file

from analysis.core.errors import PruneScopeError
from analysis.methods.pruning.masks import check_masks_fit, load_masks
from analysis.methods.pruning.unstructured import Unstructured, UnstructuredOptions, prunable_params
from analysis.models import loading as models
from analysis.store.index import RunStore
from tests.conftest import tiny_config
from tests.fuzz_common import fuzz_settings

DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.bfloat16,
          torch.float32, torch.float64, torch.float8_e4m3fn, torch.uint16)
VALUE_KINDS = ("binary", "binary", "ones", "weights", "nan", "twos", "negative")


@functools.lru_cache(maxsize=1)
def tiny_model() -> torch.nn.Module:
    """A tiny random BERT classifier (2 layers, hidden 32): its prunable tensors are what masks must fit."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(tiny_config("bert"))


def _shapes() -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in prunable_params(tiny_model()).items()}


def _values(kind: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = {"binary": lambda: (torch.rand(shape, generator=gen) > 0.5).double(),
            "ones": lambda: torch.ones(shape, dtype=torch.float64),
            "weights": lambda: torch.randn(shape, generator=gen, dtype=torch.float64) * 0.02,
            "nan": lambda: torch.full(shape, float("nan"), dtype=torch.float64),
            "twos": lambda: torch.full(shape, 2.0, dtype=torch.float64),
            "negative": lambda: -torch.ones(shape, dtype=torch.float64)}[kind]()
    if not dtype.is_floating_point and dtype != torch.bool:
        base = torch.nan_to_num(base).round()
        if dtype in (torch.uint8, torch.uint16):
            base = base.abs()
    return base.to(dtype)


@st.composite
def mask_tensors(draw) -> dict[str, torch.Tensor]:
    """One 0/1 tensor per prunable weight in a random dtype, then at most a few defects: a missing or extra
    name, a wrong shape, values that are not 0/1 (weights, NaN, 2, -1), an exotic dtype."""
    shapes = _shapes()
    seed = draw(st.integers(0, 100))
    out = {n: _values("binary", s, draw(st.sampled_from(DTYPES[:9])), seed) for n, s in shapes.items()}
    for _ in range(draw(st.integers(0, 2))):
        defect = draw(st.sampled_from(["missing", "extra", "shape", "values", "values", "dtype"]))
        name = draw(st.sampled_from(sorted(out) or ["x"]))
        right = shapes.get(name, (4, 4))
        if defect == "missing":
            out.pop(name, None)
        elif defect == "extra":
            extra = draw(st.sampled_from(["bert.encoder.layer.7.output.dense.weight", "classifier.weight", "x",
                                          "bert.embeddings.word_embeddings.weight"]))
            out[extra] = _values("binary", (4, 4), torch.uint8, seed)
        elif defect == "shape":
            shape = draw(st.sampled_from([right[::-1], (1,), (), tuple(d + 1 for d in right)]))
            out[name] = _values("binary", shape, torch.uint8, seed)
        elif defect == "values":
            kind = draw(st.sampled_from(VALUE_KINDS[3:]))  # weights, NaN, 2, -1 (all ones is a valid mask)
            out[name] = _values(kind, right, draw(st.sampled_from(DTYPES)), seed)
        else:
            out[name] = _values("binary", right, draw(st.sampled_from(DTYPES)), seed)
    return out


@st.composite
def mask_files(draw) -> bytes:
    """A safetensors file of random masks, perhaps truncated or with bytes flipped; or plain random bytes."""
    kind = draw(st.sampled_from(["masks", "masks", "masks", "truncated", "flipped", "random", "empty", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "empty":
        return b""
    if kind == "header":
        header = draw(st.sampled_from([b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 99]}}', b"[]",
                                       b'{"__metadata__": 3}', b"{", b'{"a": {"dtype": "Q9", "shape": [1], '
                                       b'"data_offsets": [0, 1]}}']))
        return len(header).to_bytes(8, "little") + header + b"\0" * 8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        save_file({k: v.contiguous() for k, v in draw(mask_tensors()).items()}, str(path))
        content = path.read_bytes()
    if kind == "truncated":
        return content[: draw(st.integers(0, len(content) - 1))]
    if kind == "flipped":
        at = draw(st.integers(0, len(content) - 1))
        return content[:at] + bytes([content[at] ^ draw(st.integers(1, 255))]) + content[at + 1:]
    return content


def _check_masks(masks: dict[str, torch.Tensor], content: bytes) -> None:
    """Masks that fit: exactly the prunable weights, bool, same shapes, read from a file of 0/1 values only."""
    from safetensors.torch import load

    shapes = _shapes()
    assert set(masks) == set(shapes)
    assert all(m.dtype == torch.bool and tuple(m.shape) == shapes[n] for n, m in masks.items())
    for name, tensor in load(content).items():  # a file of weights (or NaN, 2, -1) is not a mask
        values = tensor.to(torch.float64)
        assert bool(((values == 0) | (values == 1)).all()), f"{name} holds values other than 0/1 and was accepted"
        assert torch.equal(masks[name], values != 0)
    event("masks fit")


def _check_error(exc: PruneScopeError, source: str) -> None:
    event(f"clear error: {type(exc).__name__}")
    assert exc.problem and exc.fix, str(exc)
    assert source in str(exc), str(exc)


@fuzz_settings(100)
@given(content=mask_files(), suffix=st.sampled_from([".safetensors", ".safetensors", ".bin", ".npz"]))
def test_mask_files_fit_or_give_a_clear_error(content, suffix):
    """The --masks loader and check, as `Unstructured.check` runs them before a run is claimed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"masks{suffix}"
        path.write_bytes(content)
        try:
            masks = Unstructured.given_masks(UnstructuredOptions(masks=str(path)), tiny_model())
        except PruneScopeError as exc:
            _check_error(exc, str(path))
            return
        _check_masks(masks, content)


@fuzz_settings(30)
@given(content=mask_files())
def test_stored_mask_artefacts_fit_or_give_a_clear_error(content):
    """A pruning run's masks artefact, damaged on disk, given as --masks RUN_ID."""
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        rid = "00000000000000e5"
        store.claim(rid, "prune", {}, {"method": "magnitude"})
        (store.run_dir(rid) / "artefacts").mkdir()
        (store.run_dir(rid) / "artefacts" / "masks.safetensors").write_bytes(content)
        store.finish(rid, {}, {}, {})
        try:
            masks = load_masks(rid, store)
            check_masks_fit(prunable_params(tiny_model()), masks, rid)
        except PruneScopeError as exc:
            _check_error(exc, rid)
            return
        _check_masks(masks, content)


# -- checkpoint folders -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _checkpoint_files() -> dict[str, bytes]:
    """config.json and model.safetensors of a saved tiny BERT (plus the tokenizer files, unchanged)."""
    from transformers import AutoModel

    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="fuzz-ckpt-"))
    AutoModel.from_config(tiny_config("bert")).save_pretrained(folder, safe_serialization=True)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    shutil.rmtree(folder)
    return files


@st.composite
def checkpoint_folders(draw) -> dict[str, bytes]:
    """A real tiny checkpoint with one defect: damaged weights or config, pickle-only, extra or missing files."""
    files = dict(_checkpoint_files())
    defect = draw(st.sampled_from(["none", "truncate", "flip", "config_json", "config_field", "config_field",
                                   "config_shape", "config_shape", "pickle_only", "no_config", "extra_weights",
                                   "random_weights"]))
    weights = files["model.safetensors"]
    if defect == "truncate":
        files["model.safetensors"] = weights[: draw(st.integers(0, len(weights) - 1))]
    elif defect == "flip":
        at = draw(st.integers(0, min(len(weights), 4096) - 1))  # the header, where a flip changes meaning
        files["model.safetensors"] = weights[:at] + bytes([weights[at] ^ draw(st.integers(1, 255))]) + weights[at + 1:]
    elif defect == "config_json":
        files["config.json"] = draw(st.sampled_from([b"{", b"[]", b"null", b"\xff\xfe", b'{"model_type": 3}']))
    elif defect == "config_field":
        config = json.loads(files["config.json"])
        key = draw(st.sampled_from(["hidden_size", "num_hidden_layers", "num_attention_heads", "model_type",
                                    "intermediate_size", "vocab_size"]))
        config[key] = draw(st.sampled_from([0, 3, 64, -1, "gpt2", "llama", None]))
        files["config.json"] = json.dumps(config).encode()
    elif defect == "config_shape":  # a config.json that disagrees with the weights' shapes or layer count
        config = json.loads(files["config.json"])
        key = draw(st.sampled_from(["hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size",
                                    "max_position_embeddings", "type_vocab_size"]))
        config[key] = draw(st.sampled_from([1, 3, 64]))
        files["config.json"] = json.dumps(config).encode()
    elif defect == "pickle_only":
        del files["model.safetensors"]
        files["pytorch_model.bin"] = b"\x80\x04pickle"
    elif defect == "no_config":
        del files["config.json"]
    elif defect == "extra_weights":
        files["extra.safetensors"] = draw(st.binary(max_size=64))
    elif defect == "random_weights":
        files["model.safetensors"] = draw(st.binary(max_size=256))
    event(f"checkpoint defect: {defect}")
    return files


def _load_checkpoint(files: dict[str, bytes], folder: Path) -> torch.nn.Module:
    """Write a checkpoint folder and load it as `--model FOLDER` does."""
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return models.load_encoder_classifier(str(folder), 2)


def _check_own_weights(model: torch.nn.Module, files: dict[str, bytes]) -> None:
    """Every saved encoder tensor is in the model unchanged, and no encoder tensor was made up."""
    from safetensors.torch import load

    saved = load(files["model.safetensors"])
    own = {k.removeprefix("bert."): v for k, v in model.state_dict().items()}
    encoder = [k for k in saved if k.startswith(("embeddings.", "encoder."))]
    assert encoder and all(k in own and torch.equal(own[k], saved[k]) for k in encoder)
    assert not [k for k in own if k.startswith("encoder.") and k not in saved]


@fuzz_settings(30)
@given(files=checkpoint_folders())
def test_checkpoint_folders_load_or_give_a_clear_error(files):
    """`--model FOLDER`: the model loads with the checkpoint's own weights, or a ModelError names the folder."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model = _load_checkpoint(files, Path(tmp) / "ckpt")
        except PruneScopeError as exc:
            _check_error(exc, "ckpt")
            return
        event("checkpoint loaded")
        _check_own_weights(model, files)


def test_a_sound_checkpoint_loads_with_its_own_weights(tmp_path):
    """The fuzzed folders' starting point: loads, with every encoder tensor from the file."""
    files = _checkpoint_files()
    _check_own_weights(_load_checkpoint(files, tmp_path / "ckpt"), files)


@fuzz_settings(8)
@given(content=mask_files())
def test_a_prune_launch_with_bad_masks_writes_nothing(content, tiny_models, sentiment_files, private_store):
    """The whole `prune --masks FILE` path: a mask file that does not fit is refused before a run is claimed."""
    from analysis.methods.pruning import PruneConfig
    from analysis.runs.experiment import execute

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "masks.safetensors"
        path.write_bytes(content)
        try:
            Unstructured.given_masks(UnstructuredOptions(masks=str(path)), tiny_model())
            event("masks fit: not launched")
            return  # a fitting mask would start a real run; the other tests cover the fitting case
        except PruneScopeError:
            pass
        train, evaluation = sentiment_files
        config = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                            "eval_file": str(evaluation), "method": "magnitude", "epochs": 1,
                                            "options": {"masks": str(path)}})
        try:
            execute("prune", config, store=RunStore(private_store), device="cpu")
        except PruneScopeError as exc:
            _check_error(exc, str(path))
        else:
            raise AssertionError("a bad mask file was accepted")
        assert RunStore(private_store).list() == []
        assert not [p for p in private_store.iterdir() if p.is_dir() and p.name != "cache"]
