"""Property/fuzz tests: random dicts, YAML text and command lines into the config dataclasses and the CLI.

Every input gives either a valid config (which round-trips through its dict and hashes) or a
PruneScopeError naming the problem, never a raw KeyError/TypeError/ValueError traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import types
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from analysis.cli import base as cli
from analysis.cli import commands
from analysis.core.config import ConfigBase, FinetuneConfig, config_hash, load_yaml
from analysis.core.errors import PruneScopeError
from analysis.methods.finetuning.base import FINETUNE_METHODS, method_options
from analysis.methods.pruning import PRUNING_METHODS, PruneConfig
from analysis.runs.heads import HeadsConfig
from analysis.runs.probe import ProbeConfig
from analysis.studies.child_tuning_study import ChildTuningStudyConfig
from analysis.studies.data_scale import ScaleConfig
from analysis.studies.pruning_sweep import PruningSweep, PruningSweepConfig
from analysis.studies.quick_tour import DemoConfig
from tests.fuzz_common import fuzz_settings

FUZZ = fuzz_settings(150)

CONFIGS = (FinetuneConfig, PruneConfig, PruningSweepConfig, ScaleConfig, ChildTuningStudyConfig, ProbeConfig,
           HeadsConfig, DemoConfig)
FIELD_NAMES = sorted({name for cls in CONFIGS for name in cls.flat_fields()}
                     | {"model", "data", "train", "prune", "finetune", "options", "method_options"})
OPTION_NAMES = sorted({f for reg in (FINETUNE_METHODS, PRUNING_METHODS) for name in reg
                       for f in reg.get(name).Options.__dataclass_fields__})
METHODS = sorted(set(FINETUNE_METHODS) | set(PRUNING_METHODS))

TRICKY = ["", " ", "1e400", "-1e400", "nan", "inf", "-1", "0", "0.5", "1.5", "true", "no", "a,b", "1,2,3", "0.5,0.9",
          "1,,2", "default", "sst2", "vanilla", "sparsebert", "child-d", "x.csv", "../x", "\x00", "é", "1" * 400]


# plain strategies behind st.deferred: fast to draw, and a short name in the statistics
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(TRICKY))
_KEYS = st.one_of(st.sampled_from(FIELD_NAMES + OPTION_NAMES + METHODS),
                  st.sampled_from(FIELD_NAMES).map(lambda k: k.replace("_", "-")), st.text(max_size=8),
                  st.integers(-3, 3), st.booleans(), st.none())
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=12)
_RAW = st.one_of(st.dictionaries(_KEYS, _VALUES, max_size=6), _VALUES)


def keys():
    """Field names (snake or kebab case), option and method names, random text, and YAML's non-string keys."""
    return st.deferred(lambda: _KEYS)


def values():
    """Nested YAML-like values: None, bools, huge ints, non-finite floats, tricky strings, lists, mappings."""
    return st.deferred(lambda: _VALUES)


def raw_configs():
    """A mapping of random keys to random values, or (rarely) not a mapping at all."""
    return st.deferred(lambda: _RAW)


def typed_value(tp):
    """A value of roughly the annotated type, edges included, so validation paths (not only parsing) run."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(typed_value(a) for a in args))
    if tp is type(None):
        return st.none()
    if origin is tuple:
        inner = args[0] if args else str
        return st.lists(typed_value(inner), max_size=4).map(lambda xs: ",".join(map(str, xs))) | st.lists(
            typed_value(inner), max_size=4)
    if tp is bool:
        return st.booleans() | st.sampled_from(["yes", "off", "maybe"])
    if tp is int:
        return st.integers(-3, 3) | st.integers(-2**40, 2**40) | st.sampled_from(["7", "1e3", "2.5"])
    if tp is float:
        return st.floats(-2, 2) | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(["1e-4", "x"])
    if tp is str:
        return st.sampled_from(TRICKY + METHODS + ["rte", "cola", "lstm", "auto", "cubic", "global", "pretrained"])
    if origin is dict or tp is dict:
        return st.dictionaries(st.sampled_from(OPTION_NAMES + METHODS), values(), max_size=3)
    return values()


@st.composite
def typed_configs(draw, cls):
    """Flat overrides for a random subset of `cls`'s fields, each of roughly its own type."""
    flat = cls.flat_fields()
    names = draw(st.lists(st.sampled_from(sorted(flat)), max_size=5, unique=True))
    return {name: draw(typed_value(flat[name].type)) for name in names}


def _check_valid(cfg: ConfigBase, cls: type) -> None:
    """A built config is the right class, round-trips through its dict, hashes, and its method options parse
    (as the experiment's `prepare` parses them) or fail clearly."""
    assert isinstance(cfg, cls)
    event("valid config")
    assert cls.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    flat = {name: _leaf(cfg, ff.path) for name, ff in cls.flat_fields().items()}
    assert cls.from_flat(flat, {}) == cfg and cls.from_flat({}, flat) == cfg  # every leaf as a flat key/flag
    assert len(config_hash("fuzz", cfg, "0")) == 16
    try:
        if isinstance(cfg, FinetuneConfig):
            method_options(cfg.method, cfg.options)
        elif isinstance(cfg, PruneConfig):
            PRUNING_METHODS.get(cfg.method).Options.from_dict(cfg.options, where=f"options of {cfg.method}")
        elif isinstance(cfg, PruningSweepConfig):
            PruningSweep().prepare(cfg, "cpu")
            assert len(cfg.grid()) == len(cfg.methods) * len(cfg.sparsities) * len(cfg.seeds)
    except PruneScopeError as exc:
        _clear(exc)


def _leaf(cfg: ConfigBase, path: tuple[str, ...]):
    for part in path:
        cfg = getattr(cfg, part)
    return cfg


def _clear(exc: PruneScopeError) -> None:
    """A user error: it names a problem; counted per class in the hypothesis statistics."""
    assert exc.problem and str(exc)
    event(f"clear error: {type(exc).__name__}")


@FUZZ
@given(cls=st.sampled_from(CONFIGS), raw=raw_configs())
def test_from_dict_gives_a_config_or_a_clear_error(cls, raw):
    try:
        cfg = cls.from_dict(raw)
    except PruneScopeError as exc:
        _clear(exc)
        return
    _check_valid(cfg, cls)


@FUZZ
@given(cls=st.sampled_from(CONFIGS), base=raw_configs(), overrides=st.dictionaries(keys(), values(), max_size=4))
def test_from_flat_gives_a_config_or_a_clear_error(cls, base, overrides):
    try:
        cfg = cls.from_flat(base, overrides)
    except PruneScopeError as exc:
        _clear(exc)
        return
    _check_valid(cfg, cls)


@FUZZ
@given(data=st.data(), cls=st.sampled_from(CONFIGS))
def test_typed_values_give_a_config_or_a_clear_error(data, cls):
    overrides = data.draw(typed_configs(cls))
    try:
        cfg = cls.from_flat({}, overrides)
    except PruneScopeError as exc:
        _clear(exc)
        return
    _check_valid(cfg, cls)


@FUZZ
@given(field=st.sampled_from([(FinetuneConfig, "options"), (PruneConfig, "options"),
                              (PruningSweepConfig, "method_options")]), value=values())
def test_free_form_option_mappings_give_a_config_or_a_clear_error(field, value):
    """The free-form mappings (method options) hold anything YAML can: they must still hash and round-trip."""
    cls, name = field
    try:
        cfg = cls.from_flat({}, {name: value})
    except PruneScopeError as exc:
        _clear(exc)
        return
    _check_valid(cfg, cls)


@FUZZ
@given(method=st.sampled_from(METHODS), raw=raw_configs())
def test_method_options_give_options_or_a_clear_error(method, raw):
    registry = FINETUNE_METHODS if method in FINETUNE_METHODS else PRUNING_METHODS
    options_cls = registry.get(method).Options
    try:
        options = options_cls.from_dict(raw, where=f"options of {method}")
    except PruneScopeError as exc:
        _clear(exc)
        return
    _check_valid(options, options_cls)


YAML_TEXT = st.one_of(
    st.text(max_size=200),
    st.dictionaries(keys(), values(), max_size=6).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.lists(st.sampled_from(["model:", "  model: default", "data:", "  dataset: rte", "epochs: 2", "lr: [1, 2]",
                              "seed: -1", "- a", "{", "key: &a [*a]", "!!python/object:os.system x", "\t", "?",
                              "sparsity: .nan", "train_size: 1e3", "text_columns: [a, b, c]", "tasks: []",
                              "method_options: {sparsebert: 3}", "options: {p: 2}", "data: 5"]),
             max_size=8).map("\n".join),
)


@FUZZ
@given(cls=st.sampled_from(CONFIGS), text=st.one_of(YAML_TEXT, st.binary(max_size=200)))
def test_yaml_files_give_a_config_or_a_clear_error(cls, text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            cfg = cls.from_flat(load_yaml(path), {})
        except PruneScopeError as exc:
            _clear(exc)
            return
    _check_valid(cfg, cls)


FLAG_NAMES = sorted({"--" + n.replace("_", "-") for n in FIELD_NAMES + OPTION_NAMES})
ARG_TOKENS = st.one_of(st.sampled_from(FLAG_NAMES), st.sampled_from(TRICKY), st.text(max_size=8),
                       st.floats(allow_nan=True).map(str), st.integers(-5, 10**6).map(str),
                       st.sampled_from(["--config", "--json", "--device", "--no-save-weights", "--", "-x", "--=",
                                        "--lr=-1e-4", "--no-bf16", "--bf16", "pruning", "child-tuning"]))
COMMANDS_FUZZED = ("finetune", "prune", "sweep", "scale")


@FUZZ
@given(command=st.sampled_from(COMMANDS_FUZZED), tokens=st.lists(ARG_TOKENS, max_size=8), study=st.booleans())
def test_command_lines_give_a_config_or_a_json_error(command, tokens, study, monkeypatch):
    """The real argument parser and config building; only the experiment itself is replaced by a recorder."""
    tokens = [t for t in tokens if not t.startswith(("-h", "--h")) and "\x00" not in t]
    built: list[ConfigBase] = []

    def record(kind, config, *args, **kwargs):
        built.append(config)
        return SimpleNamespace(record=SimpleNamespace(run_id="fuzz")), {"status": "done", "run_id": "fuzz"}, None

    monkeypatch.setattr(commands, "run_with_bar", record)
    argv = [command] + (["pruning"] if command == "sweep" and study else []) + tokens + ["--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(argv)
    last = json.loads(out.getvalue().strip().splitlines()[-1])
    if code == 0:
        assert len(built) == 1 and last["status"] == "done"
        _check_valid(built[0], type(built[0]))
    else:
        assert code == 2 and last["status"] == "error" and last["error"], (argv, last)


def test_known_bad_inputs_name_the_problem(tmp_path):
    """The shapes the fuzzers found once, kept as plain regression cases."""
    cases = [
        (FinetuneConfig, ["not", "a", "mapping"], "mapping"),
        (FinetuneConfig, {1: 2}, "key"),
        (FinetuneConfig, {"data": 5}, "data"),
    ]
    assert FinetuneConfig.from_flat({"model": "lstm"}, {}).model.model == "lstm"  # a group and a flat field
    for cls, raw, word in cases:
        with pytest.raises(PruneScopeError, match=word):
            cls.from_flat(raw, {})
    sweep = PruningSweepConfig.from_flat({"method_options": {"sparsebert": 3}}, {})
    with pytest.raises(PruneScopeError, match="method_options.sparsebert"):
        PruningSweep().prepare(sweep, "cpu")
