"""What every pruning method provides, the pruning config, and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from analysis.core.config import ConfigBase, DataConfig, ModelConfig, TrainConfig, check
from analysis.core.registry import Registry
from analysis.training.loop import Hook

if TYPE_CHECKING:
    from analysis.runs.experiment import RunContext


@dataclass(frozen=True)
class PruneConfig(ConfigBase):
    """Prune a model on a task with a method from the registry, to a target sparsity."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = "sparsebert"
    sparsity: float = 0.9
    options: dict = field(default_factory=dict)
    teacher: str = "auto"  # auto: the dense model fine-tuned on the same data (found in the store or trained)
    teacher_seed: int = 0
    seed: int = 0

    def validate(self) -> None:
        check(0.0 <= self.sparsity < 1.0, "sparsity", f"must be in [0, 1), got {self.sparsity}",
              "use e.g. --sparsity 0.9 (the fraction of encoder weights removed)")
        check(self.seed >= 0 and self.teacher_seed >= 0, "seed", "seeds must be >= 0", "use e.g. --seed 0")
        check(self.model.is_transformer, "model",
              f"pruning needs a transformer's encoder, and {self.model.model!r} is a baseline without one",
              "use --model default or a checkpoint folder (fine-tune the baseline with `finetune --model "
              f"{self.model.model}` instead)")


@dataclass
class PruneContext:
    """What a method gets: the student (pre-trained or fine-tuned), the teacher, data, config, run context."""

    student: nn.Module
    teacher: nn.Module | None
    inputs: Any  # finetune.RunInputs
    config: PruneConfig
    options: Any
    run: RunContext
    teacher_id: str | None = None
    artefacts: dict[str, Any] = field(default_factory=dict)

    def teacher_cache_key(self) -> str:
        """Identifies the teacher's outputs on this run's training examples (shared across a sweep)."""
        import hashlib

        train = self.inputs.data.train
        digest = hashlib.sha256(train.indices.tobytes()).hexdigest()[:16]
        return f"{self.teacher_id}:{train.fingerprint}:{digest}:{self.config.data.max_length}"


class PruningMethod:
    """A pruning method. Unstructured ones return training hooks; structured ones reshape the student.

    Everything the rest of the project shows of a method comes from its class: `Options` (a frozen dataclass:
    the CLI flags and the form fields), the docstring (help), `order` (its place, hence its colour, in figures,
    legends and forms), `removes` and `encoder_share` (what the invariant tests expect of its sparsity)."""

    Options: type[ConfigBase]
    order: int = 100  # lower first; the palette follows this order, so a method keeps its colour across figures
    removes: bool = False  # True: weights are removed (a smaller model); False: weights are masked to zero
    encoder_share: float = 1.0  # the share of the encoder's weights its sparsity applies to (heads: Q/K/V/O = 0.5)

    def needs_teacher(self, options: Any) -> bool:
        return False

    def start_from(self, options: Any) -> str:
        """'pretrained' or 'finetuned': which weights the student starts from."""
        return getattr(options, "start", "pretrained")

    def check(self, options: Any, model: nn.Module) -> None:
        """Validate inputs that depend on the model (e.g. a mask file) before anything is written."""

    def before_training(self, ctx: PruneContext) -> nn.Module:
        """Change the student before training (e.g. remove heads). Returns the model to train."""
        return ctx.student

    def hooks(self, ctx: PruneContext) -> list[Hook]:
        return []

    def trains(self, options: Any) -> bool:
        return True

    def save_artefacts(self, ctx: PruneContext, model: nn.Module) -> None:
        """Store masks or selections (heads, neurons, layers) as run artefacts."""


PRUNING_METHODS: Registry[type[PruningMethod]] = Registry("pruning method", ("analysis.methods.pruning",))
