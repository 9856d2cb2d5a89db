"""Launch forms generated from the experiment registry and the config dataclasses (no streamlit here).

`form_fields(kind)` gives one `FormField` per flat config field (its widget, default, choices and group);
`option_slots(kind)` says where a method's own options go (the fine-tune's and prune's `options`, the
sweep's `method_options`) and `option_fields` lists a method's Options. `build_config` turns what a form
returns into the config through `from_flat`, the CLI's path, so mistakes surface as ConfigErrors.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from functools import reduce
from typing import Any, Callable

from analysis.core.config import LR_SCHEDULES, PRECISIONS, ConfigBase, FinetuneConfig, without_defaults
from analysis.core.errors import ConfigError
from analysis.core.registry import Registry
from analysis.methods.finetuning.base import FINETUNE_METHODS
from analysis.methods.probes import PROBES
from analysis.methods.pruning import PRUNING_METHODS, PruneConfig
from analysis.runs.experiment import EXPERIMENTS
from analysis.store.index import RunStore
from analysis.studies.data_scale import ARMS
from analysis.studies.pruning_sweep import PruningSweepConfig
from analysis.studies.quick_tour import DemoConfig

# Which registry names the methods of a config class, and which dict field holds their options.
METHOD_REGISTRIES: dict[type, Registry[Any]] = {FinetuneConfig: FINETUNE_METHODS, PruneConfig: PRUNING_METHODS,
                                                 PruningSweepConfig: PRUNING_METHODS, DemoConfig: PRUNING_METHODS}
OPTION_FIELDS: dict[tuple[type, str], str] = {(FinetuneConfig, "options"): "method",
                                              (PruneConfig, "options"): "method",
                                              (PruningSweepConfig, "method_options"): "methods"}
# Fields of a study's base config that the study sets per run (its grid), so its form leaves them out.
SET_BY_STUDY = ("method", "options", "seed", "sparsity")
KIND_TITLES = {"finetune": "Fine-tune (vanilla, Child-Tuning)", "prune": "Prune", "sweep-pruning": "Pruning sweep",
               "study-child-tuning": "Child-Tuning study", "study-scale": "Data-scale study", "probe": "Probes",
               "heads": "Head importance", "demo": "Demo study"}


def _datasets(owner: type, store: RunStore | None) -> list[str]:
    from analysis.data.tasks import dataset_names

    return dataset_names()


def _methods(owner: type, store: RunStore | None) -> list[str] | None:
    registry = METHOD_REGISTRIES.get(owner)
    return registry.names() if registry else None


def _probe_targets(owner: type, store: RunStore | None) -> list[str]:
    """'default' and the finished fine-tune and prune runs of a transformer that kept their weights (a baseline has
    no encoder to probe)."""
    from analysis.service.runs import transformer_runs_with_weights

    return ["default"] + ([r["run_id"] for r in transformer_runs_with_weights(store)] if store is not None else [])


CHOICES: dict[str, Callable[[type, RunStore | None], list[str] | None]] = {
    "method": _methods, "methods": _methods, "arms": lambda o, s: ARMS.names(), "probes": lambda o, s: PROBES.names(),
    "tasks": _datasets, "transfer_to": _datasets, "transfer_from": _datasets, "target": _probe_targets,
    "precision": lambda o, s: list(PRECISIONS), "lr_schedule": lambda o, s: list(LR_SCHEDULES),
}


@dataclass(frozen=True)
class FormField:
    name: str
    widget: str  # checkbox | int | float | text | select | multiselect | list | mapping
    default: Any
    optional: bool = False  # None allowed (an empty input)
    choices: tuple[str, ...] = ()
    group: str = "experiment"
    help: str = ""

    @property
    def default_text(self) -> str:
        """The default as a text input shows it ('0.5, 0.9' for a list, '' for None)."""
        if self.default is None:
            return ""
        if isinstance(self.default, (list, tuple)):
            return ", ".join(str(v) for v in self.default)
        return str(self.default)

    @property
    def step(self) -> float:
        """A step for a number input: a tenth of the default's order of magnitude."""
        value = abs(float(self.default or 0))
        return 10.0 ** (math.floor(math.log10(value)) - 1) if value else 0.01


def kinds() -> list[str]:
    """Experiment kinds in the order a form picker shows them (the titled ones first)."""
    order = list(KIND_TITLES)
    return sorted(EXPERIMENTS.names(), key=lambda k: (order.index(k) if k in order else len(order), k))


def title(kind: str) -> str:
    return KIND_TITLES.get(kind, kind.replace("-", " ").capitalize())


def describe(kind: str) -> str:
    """The config class's docstring (dataclasses without one get an auto-generated signature: skipped)."""
    cls = EXPERIMENTS.get(kind).config_cls
    doc = (cls.__doc__ or "").strip()
    return "" if doc.startswith(cls.__name__ + "(") else doc


def _widget(tp: Any) -> tuple[str, bool]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)][0]
        return _widget(inner)[0], True
    if origin is tuple:
        return "list", False
    if tp is dict or origin is dict:
        return "mapping", False
    return {bool: "checkbox", int: "int", float: "float"}.get(tp, "text"), False


def _owner(cls: type, path: tuple[str, ...]) -> type:
    for part in path[:-1]:
        cls = typing.get_type_hints(cls)[part]
    return cls


def fields_of(cls: type[ConfigBase], store: RunStore | None = None, hide_set_by_study: bool = True) -> list[FormField]:
    """One FormField per flat field of a config class, defaults taken from its default instance."""
    instance = cls()
    out = []
    for name, flat in cls.flat_fields().items():
        owner = _owner(cls, flat.path)
        if (owner, name) in OPTION_FIELDS or (hide_set_by_study and len(flat.path) > 1 and name in SET_BY_STUDY):
            continue
        widget, optional = _widget(flat.type)
        default = reduce(getattr, flat.path, instance)
        choices = CHOICES[name](owner, store) if name in CHOICES else None
        if choices is not None:
            widget = "multiselect" if widget == "list" else "select"
        group = flat.path[-2] if len(flat.path) > 1 else "experiment"
        flag = "--" + name.replace("_", "-")
        out.append(FormField(name, widget, default, optional, tuple(choices or ()), group,
                             f"`{flag}` (default: {default if default not in ((), None) else 'none'})"))
    return out


def form_fields(kind: str, store: RunStore | None = None) -> list[FormField]:
    """The form of an experiment kind (its method options come from `option_slots`)."""
    return fields_of(EXPERIMENTS.get(kind).config_cls, store)


@dataclass(frozen=True)
class OptionSlot:
    field: str  # the config's dict field: options | method_options
    method_field: str  # the field naming the method(s): method | methods
    registry: Registry[Any]


def option_slots(kind: str) -> list[OptionSlot]:
    """Where method options go in this kind's config (only slots the form shows)."""
    cls = EXPERIMENTS.get(kind).config_cls
    out = []
    for name, flat in cls.flat_fields().items():
        owner = _owner(cls, flat.path)
        if (owner, name) in OPTION_FIELDS and len(flat.path) == 1:
            out.append(OptionSlot(name, OPTION_FIELDS[(owner, name)], METHOD_REGISTRIES[owner]))
    return out


def option_fields(registry: Registry[Any], method: str) -> list[FormField]:
    """The fields of a method's Options dataclass (none for a method without options)."""
    return fields_of(registry.get(method).Options, hide_set_by_study=False)


def parse(field: FormField, raw: Any) -> Any:
    """A widget's value as the config expects it (text lists stay text: the config splits them)."""
    if field.widget in ("text", "list") and isinstance(raw, str) and not raw.strip():
        return None if field.optional else raw
    if field.widget == "mapping" and isinstance(raw, str):
        import yaml

        try:
            value = yaml.safe_load(raw) if raw.strip() else {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot read {field.name}: {exc}", where=field.name, fix="write key: value lines") from None
        if not isinstance(value, dict):
            raise ConfigError("expected key: value lines", where=field.name, fix="e.g. `p: 0.3`")
        return value
    if field.widget == "multiselect":
        return list(raw or [])
    return raw


def options_dict(registry: Registry[Any], method: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A method's options from a form, validated, keeping only values that differ from the defaults
    (so a run launched here gets the same id as the same run launched from the CLI)."""
    spec = {f.name: f for f in option_fields(registry, method)}
    values = {k: parse(spec[k], v) for k, v in raw.items() if k in spec}
    options = registry.get(method).Options.from_dict(values, where=f"options of {method}")
    return without_defaults(options)


def build_config(kind: str, spec: list[FormField], values: dict[str, Any],
                 options: dict[str, dict[str, Any]] | None = None) -> ConfigBase:
    """The config from a form's values; `options` maps a method to its raw option values."""
    by_name = {f.name: f for f in spec}
    flat = {name: parse(by_name[name], value) for name, value in values.items() if name in by_name}
    for slot in option_slots(kind):
        chosen = flat.get(slot.method_field)
        methods = chosen if isinstance(chosen, list) else [chosen]
        per_method = {m: options_dict(slot.registry, m, (options or {}).get(m, {})) for m in methods if m}
        flat[slot.field] = per_method.get(chosen, {}) if slot.field == "options" else \
            {m: o for m, o in per_method.items() if o}
    return EXPERIMENTS.get(kind).config_cls.from_flat({}, flat)
