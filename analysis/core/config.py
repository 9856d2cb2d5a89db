"""Frozen config dataclasses: they round-trip to dicts and YAML, and their fields are the CLI flags.

A config is a tree: an experiment config (e.g. `FinetuneConfig`) holds groups (`ModelConfig`,
`DataConfig`, `TrainConfig`) whose field names are unique across the tree, so each field is also one
flat CLI flag (`train_size` -> `--train-size`) and one dashboard form field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

from analysis.core.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # the `precision` setting (analysis/core/precision.py resolves auto)


class ConfigBase:
    """Shared behaviour: dict round trip, strict parsing, validation, flat field map."""

    def validate(self) -> None:
        """Raise ConfigError on an out-of-range value; subclasses extend."""

    def __post_init__(self) -> None:
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str = "config") -> "ConfigBase":
        if raw is not None and not isinstance(raw, Mapping):
            raise ConfigError(f"expected a mapping of keys to values, got {raw!r:.80}", where=where,
                              fix="write `key: value` pairs (see --help for the keys)")
        raw = cls.upgrade(dict(raw or {}), where)
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(raw) - set(known), key=repr)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(map(repr, unknown))}",
                where=where,
                fix=f"valid keys are: {', '.join(sorted(known))}",
            )
        hints = typing.get_type_hints(cls)
        values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in raw.items()}
        try:
            return cls(**values)
        except TypeError as exc:  # a missing required field
            raise ConfigError(str(exc), where=where) from None

    @classmethod
    def upgrade(cls, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """Map keys of older configs (stored records, old YAML files) to today's; subclasses extend."""
        return raw

    @classmethod
    def flat_fields(cls) -> dict[str, "FlatField"]:
        """Leaf field name -> where it sits in the tree and its type. Names are unique by construction."""
        out: dict[str, FlatField] = {}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):  # type: ignore[arg-type]
            sub = _dataclass_type(hints[f.name])
            items = (
                {k: FlatField((f.name,) + v.path, v.field, v.type) for k, v in sub.flat_fields().items()}
                if sub is not None
                else {f.name: FlatField((f.name,), f, hints[f.name])}
            )
            for key, val in items.items():
                if key in out:
                    raise TypeError(f"{cls.__name__}: field name {key!r} appears twice in the tree")
                out[key] = val
        return out

    @classmethod
    def from_flat(cls, base: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "config"):
        """Build from a nested or flat dict (e.g. a YAML file) plus flat overrides (e.g. CLI flags)."""
        return cls.from_dict(deep_merge(nest_flat(cls, base, where), nest_flat(cls, overrides, where)), where)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` over `base`, group by group at every depth (a flag sets one field of a study's `prune.train`
    and leaves the file's other `prune.train` fields as they are)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class FlatField:
    path: tuple[str, ...]
    field: dataclasses.Field
    type: Any


def nest_flat(cls: type, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Accept both nested keys ({'data': {'dataset': ...}}) and flat ones ({'dataset': ...})."""
    flat = cls.flat_fields()
    groups = {f.name for f in fields(cls) if _dataclass_type(typing.get_type_hints(cls)[f.name])}
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping of keys to values, got {raw!r:.80}", where=where,
                          fix="write `key: value` pairs (see --help for the keys)")
    nested: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if not isinstance(key, str):
            raise ConfigError(f"key {key!r} is not a name", where=where, fix="keys are field names, e.g. epochs")
        key = key.replace("-", "_")
        if key in FLAT_ALIASES and key not in flat and FLAT_ALIASES[key][0] in flat:
            key, value = FLAT_ALIASES[key][0], FLAT_ALIASES[key][1](value, f"{where}.{key}")
        if key in groups and key not in flat and not isinstance(value, Mapping):
            raise ConfigError(f"{key!r} must be a mapping of its fields, got {value!r:.80}", where=where,
                              fix=f"write `{key}:` with indented `field: value` lines, or use flat keys")
        if key in groups and isinstance(value, Mapping):  # 'model' is a group and a flat field too
            nested.setdefault(key, {}).update(value)
        elif key in flat:
            path = flat[key].path
            node = nested
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        else:
            raise ConfigError(
                f"unknown key {key!r}", where=where, fix=f"valid keys are: {', '.join(sorted(flat))}"
            )
    return nested


def _bf16_alias(value: Any, where: str) -> str:
    """The old `bf16: true|false` switch, kept as an alias of `precision: bf16|fp32`."""
    return "bf16" if _coerce(bool, value, where) else "fp32"


# old flat keys still accepted: name -> (the field it sets, how its value converts)
FLAT_ALIASES: dict[str, tuple[str, Any]] = {"bf16": ("precision", _bf16_alias)}


def _dataclass_type(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and is_dataclass(tp) else None


def _to_plain(value: Any) -> Any:
    if is_dataclass(value):
        return value.to_dict()  # type: ignore[union-attr]
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in sorted(value.items())}
    return value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, with a clear error when it does not fit."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    sub = _dataclass_type(tp)
    if sub is not None:
        if isinstance(value, sub):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {value!r}", where=where)
        return sub.from_dict(value, where)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", where=where)
        inner = args[0] if args else str
        return tuple(_coerce(inner, v.strip() if isinstance(v, str) else v, where) for v in items)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {value!r}", where=where)
        return _plain(value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise ConfigError(f"expected true/false, got {value!r}", where=where)
    if tp is int:
        if isinstance(value, bool) or not _is_intlike(value):
            raise ConfigError(f"expected an integer, got {value!r}", where=where)
        return int(float(value))
    if tp is float:
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"expected a number, got {value!r}", where=where) from None
        if not math.isfinite(out):
            raise ConfigError(f"expected a finite number, got {value!r}", where=where)
        return out
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"expected a string, got {value!r}", where=where)
        return str(value)
    return value


def _plain(value: Any, where: str) -> Any:
    """A free-form mapping field (method options) as plain JSON data: string keys, finite numbers."""
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"key {bad[0]!r} is not a name", where=where, fix="keys are option names, e.g. p")
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {value!r}", where=where)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"expected plain data (text, numbers, lists, mappings), got {value!r:.80}", where=where)


def _is_intlike(value: Any) -> bool:
    try:
        return float(value) == int(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def check(condition: bool, where: str, problem: str, fix: str) -> None:
    if not condition:
        raise ConfigError(problem, where=where, fix=fix)


# ----------------------------------------------------------------------------------------------
# The groups every experiment shares


# `--model` values that are no pretrained transformer: baselines on the `--tokenizer` model's vocabulary
BASELINE_MODELS = ("lstm", "embedding-bag")


@dataclass(frozen=True)
class ModelConfig(ConfigBase):
    """Which model to start from: 'default' (embedded MiniLM), a local HF folder, a hub id, or a baseline:
    'lstm' or 'embedding-bag' (the floor: mean-pooled pretrained token embeddings and a linear head)."""

    model: str = "default"
    tokenizer: str = "default"  # a baseline's vocabulary (and embedding source); transformers use their own
    lstm_layers: int = 1
    lstm_hidden: int = 256
    lstm_bidirectional: bool = True
    lstm_embeddings: str = "random"  # random | pretrained (copied from the tokenizer's model)
    lstm_embedding_dim: int | None = None  # None: the pretrained model's width
    lstm_dropout: float = 0.1
    lstm_sparse_embeddings: bool = True  # sparse embedding gradients: AdamW updates only the rows a batch used
    lstm_special_tokens: bool = False  # feed the tokenizer's [CLS]/[SEP] (first/last token) to the LSTM too
    bag_dropout: float = 0.1  # embedding-bag: dropout on the mean embedding, before the head
    bag_sparse_embeddings: bool = True  # embedding-bag: sparse embedding gradients (lazy AdamW), as the LSTM's
    bag_freeze_embeddings: bool = False  # embedding-bag: train only the head (a frozen-embedding linear probe)

    def validate(self) -> None:
        check(bool(self.model.strip()), "model", "the model name is empty", "pass --model default or a path")
        check(self.lstm_layers >= 1, "lstm_layers", f"must be >= 1, got {self.lstm_layers}", "use 1 or more")
        check(self.lstm_hidden >= 1, "lstm_hidden", f"must be >= 1, got {self.lstm_hidden}", "use e.g. 256")
        check(
            self.lstm_embeddings in {"random", "pretrained"},
            "lstm_embeddings",
            f"got {self.lstm_embeddings!r}",
            "use 'random' or 'pretrained'",
        )
        check(0 <= self.lstm_dropout < 1, "lstm_dropout", f"got {self.lstm_dropout}", "use a value in [0, 1)")
        check(0 <= self.bag_dropout < 1, "bag_dropout", f"got {self.bag_dropout}", "use a value in [0, 1)")

    @property
    def is_lstm(self) -> bool:
        return self.model == "lstm"

    @property
    def is_embedding_bag(self) -> bool:
        return self.model == "embedding-bag"

    @property
    def is_transformer(self) -> bool:
        """False for the baselines (`BASELINE_MODELS`), which have no encoder to prune, probe or distil."""
        return self.model not in BASELINE_MODELS


@dataclass(frozen=True)
class DataConfig(ConfigBase):
    """Which data: a registered dataset name or a user file (CSV/TSV/JSONL) with a column mapping."""

    dataset: str = "sst2"
    train_size: int | None = None  # None: the whole training split
    eval_split: str | None = None  # None: the card's default evaluation split
    eval_size: int | None = None  # None: the whole evaluation split
    max_length: int = 128
    text_columns: tuple[str, ...] | None = None  # user files: one column, or two for sentence pairs
    label_column: str | None = None  # user files
    eval_file: str | None = None  # user files: the evaluation file
    task: str | None = None  # user files: classification | regression (inferred when None)

    def validate(self) -> None:
        check(bool(self.dataset.strip()), "dataset", "the dataset name is empty", "pass --dataset sst2")
        for name in ("train_size", "eval_size"):
            value = getattr(self, name)
            check(value is None or value >= 1, name, f"must be >= 1, got {value}", "omit it to use all rows")
        check(
            8 <= self.max_length <= 4096,
            "max_length",
            f"got {self.max_length}",
            "use a length in [8, 4096] (512 for BERT-family models)",
        )
        check(
            self.text_columns is None or len(self.text_columns) in (1, 2),
            "text_columns",
            f"got {self.text_columns}",
            "give one column (single sentences) or two (sentence pairs)",
        )
        check(
            self.task in (None, "classification", "regression"),
            "task",
            f"got {self.task!r}",
            "use 'classification' or 'regression'",
        )


SELECT_ON = ("metric", "loss", "metric-then-loss")  # what picks the best epoch on a held-out part
LR_SCHEDULES = ("linear", "constant", "cosine")  # the rate after warm-up (analysis/train.py lr_schedule)


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """The one training loop's settings (AdamW, linear warmup, then a linear, constant or cosine rate)."""

    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    # after warm-up: linear (decay to 0) | constant (held; with warmup_ratio 0 BertAdam's 'none') | cosine (to 0)
    lr_schedule: str = "linear"
    max_grad_norm: float = 1.0
    # auto | fp32 | bf16 | fp16; auto picks per device (analysis/core/precision.py) and the run records what it picked
    precision: str = "auto"
    eval_batch_size: int = 128
    length_bucketing: bool = True
    eval_every_epoch: bool = True
    holdout_fraction: float = 0.0  # > 0: hold out this share of the training data to pick the best epoch
    patience: int = 0  # > 0: stop after this many epochs without improvement on the held-out part
    select_on: str = "metric"  # what picks the best epoch on the held-out part: metric | loss | metric-then-loss
    # torch's fused AdamW kernel: one pass over each tensor instead of several (a fine-tune of the default model
    # ran 27% faster in bf16 on a 2-core CPU; the LSTM's embedding step 2x); --no-fused-optimizer for foreach AdamW
    fused_optimizer: bool = True
    checkpoint_every: int = 0  # checkpoints at epoch boundaries; N > 0: also every N steps; -1: none

    @classmethod
    def upgrade(cls, raw: dict[str, Any], where: str) -> dict[str, Any]:
        if "bf16" in raw and "precision" not in raw:  # records and YAML files from before `precision`
            raw["precision"] = _bf16_alias(raw.pop("bf16"), f"{where}.bf16")
        return raw

    def validate(self) -> None:
        check(self.precision in PRECISIONS, "precision", f"got {self.precision!r}",
              f"use one of {', '.join(PRECISIONS)} (auto: bf16 only where this device runs it fast, else fp32)")
        check(0 <= self.holdout_fraction < 0.5, "holdout_fraction", f"got {self.holdout_fraction}",
              "use a value in [0, 0.5), e.g. 0.1")
        check(self.patience >= 0, "patience", f"got {self.patience}", "use 0 (off) or a number of epochs")
        check(self.patience == 0 or self.holdout_fraction > 0, "patience", "early stopping needs a held-out part",
              "set --holdout-fraction, e.g. 0.1")
        check(self.select_on in SELECT_ON, "select_on", f"got {self.select_on!r}",
              "use 'metric' (the task's first metric), 'loss' (the held-out loss) or 'metric-then-loss' (the metric, "
              "ties broken by the loss)")
        check(self.lr > 0, "lr", f"the learning rate must be positive, got {self.lr}", "use e.g. --lr 1e-4")
        check(self.epochs > 0, "epochs", f"must be positive, got {self.epochs}", "use e.g. --epochs 3")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}", "use e.g. 32")
        check(self.eval_batch_size >= 1, "eval_batch_size", f"got {self.eval_batch_size}", "use e.g. 128")
        check(self.weight_decay >= 0, "weight_decay", f"got {self.weight_decay}", "use a value >= 0")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", f"got {self.warmup_ratio}", "use a value in [0, 1)")
        check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"got {self.lr_schedule!r}",
              f"use one of {', '.join(LR_SCHEDULES)} (constant with --warmup-ratio 0 is the SparseBERT authors' "
              "schedule)")
        check(self.max_grad_norm >= 0, "max_grad_norm", f"got {self.max_grad_norm}", "use 0 to turn clipping off")
        check(self.checkpoint_every >= -1, "checkpoint_every", f"got {self.checkpoint_every}",
              "use 0 (epoch boundaries), N > 0 (also every N steps) or -1 (no checkpoints)")


@dataclass(frozen=True)
class FinetuneConfig(ConfigBase):
    """Fine-tune a model on a task, with a fine-tuning method from the registry (vanilla, Child-Tuning)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = "vanilla"
    options: dict = field(default_factory=dict)  # the method's own options, validated by the method
    seed: int = 0

    def validate(self) -> None:
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}", "use e.g. --seed 0")


# ----------------------------------------------------------------------------------------------
# Identity


def without_defaults(cfg: ConfigBase) -> dict[str, Any]:
    """The config's dict with every default-valued leaf dropped, so adding a field keeps old ids."""
    out: dict[str, Any] = {}
    for f in fields(cfg):  # type: ignore[arg-type]
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            sub = without_defaults(value)  # type: ignore[arg-type]
            if sub:
                out[f.name] = sub
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if value != default:
            out[f.name] = _to_plain(value)
    return out


def without_default_options(options_cls: type[ConfigBase], raw: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """A method's options validated against its options dataclass, with every default dropped: `--p 0.3` (the
    default), no `--p`, YAML `p: 0.3` and `p: 3e-1` are all `{}`; YAML `p: 1` and `--p 1` are both `{'p': 1.0}`."""
    return without_defaults(options_cls.from_dict(raw or {}, where=where))


def config_hash(kind: str, cfg: ConfigBase, code_version: str, extra: Mapping[str, Any] | None = None) -> str:
    """A short stable hash of (experiment kind, non-default config values, code version, extra)."""
    payload = {"kind": kind, "config": without_defaults(cfg), "code": code_version, **(extra or {})}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_precision(config: dict[str, Any] | None) -> str | None:
    """The precision a stored run used, from its config: `precision` at any depth, or the old `bf16` flag
    (runs made before the setting existed were bf16 unless `bf16: false`); None for a config with neither."""

    def find(node: Any) -> str | None:
        if isinstance(node, dict):
            if isinstance(node.get("precision"), str):
                return node["precision"]
            if "bf16" in node:
                return "bf16" if node["bf16"] else "fp32"
            for value in node.values():
                found = find(value)
                if found:
                    return found
        return None

    return find(config or {})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file, with a clear error for a missing file or bad syntax."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist", fix="check the path given to --config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}", fix="the file must be UTF-8 YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values", fix="write key: value lines")
    return raw
