"""What a fine-tuning method is (its options and the hooks it adds to the loop), the registry of them, and vanilla."""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from torch import nn

from analysis.core.config import ConfigBase, FinetuneConfig, FlatField
from analysis.core.registry import Registry
from analysis.data.tasks import TaskData
from analysis.data.tokens import Encoded
from analysis.training.loop import Hook, TaskSpec

if TYPE_CHECKING:
    from analysis.runs.experiment import RunContext


class FinetuneMethod:
    """A way of fine-tuning: its options dataclass and the hooks it adds to the training loop."""

    Options: type[ConfigBase]

    def check(self, options: Any, inputs: "RunInputs") -> None:
        """Refuse options that cannot work with these inputs, before anything is written."""

    def hooks(self, model: nn.Module, inputs: "RunInputs", options: Any, config: FinetuneConfig,
              ctx: "RunContext") -> list[Hook]:
        return []


FINETUNE_METHODS: Registry[type[FinetuneMethod]] = Registry("fine-tuning method", ("analysis.methods.finetuning",))


@dataclass(frozen=True)
class NoOptions(ConfigBase):
    pass


@FINETUNE_METHODS.register("vanilla")
class Vanilla(FinetuneMethod):
    """Plain full fine-tuning: every parameter updated by AdamW."""

    Options = NoOptions


def method_options(method: str, raw: dict[str, Any]) -> ConfigBase:
    """The method's options, validated, with defaults filled in."""
    return FINETUNE_METHODS.get(method).Options.from_dict(raw, where=f"options of {method}")


@dataclass
class RunInputs:
    """Everything a training run needs, loaded and validated."""

    model: nn.Module
    tokenizer: Any
    data: TaskData
    train: Encoded | None
    eval: Encoded
    task: TaskSpec
    holdout: Encoded | None = None
    rng_state: Any = None  # torch's RNG right after the model was built: restored before training


def option_flags(registry: Registry[Any]) -> dict[str, FlatField]:
    """Option fields across a method registry, for CLI flags (`--p` etc.); a name means one type."""
    out: dict[str, FlatField] = {}
    for name in registry:
        options = registry.get(name).Options
        hints = typing.get_type_hints(options)
        for f in fields(options):
            if f.name in out and out[f.name].type != hints[f.name]:
                raise TypeError(f"option {f.name!r} has two types across {registry.kind}s")
            out[f.name] = FlatField((f.name,), f, hints[f.name])
    return out
