"""Distillation losses (SparseBERT / TinyBERT style): pre-softmax attention-score MSE, hidden-state MSE
(embedding output + every layer) and soft cross-entropy at temperature T; MSE to the gold label for
regression. Each term has its own weight so a user can ablate the knowledge sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from analysis.core.config import ConfigBase, check
from analysis.core.errors import ConfigError
from analysis.models.arch import Arch
from analysis.models.heads import kept_heads
from analysis.training.loop import Hook, TaskSpec, TrainState


class Capture:
    """Forward hooks recording hidden states and pre-softmax attention scores of a model."""

    def __init__(self, model: nn.Module, only_training: bool = False):
        arch = Arch(model)
        self.model, self.only_training = model, only_training
        self.head_dim = arch.head_dim
        self.hidden: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []
        self._queries: dict[int, torch.Tensor] = {}
        self._handles = [arch.base.embeddings.register_forward_hook(self._on_hidden)]
        for i, layer in enumerate(arch.layers()):
            self._handles.append(layer.register_forward_hook(self._on_hidden))
            self._handles.append(arch.linear(i, "query").register_forward_hook(self._on_query(i)))
            self._handles.append(arch.linear(i, "key").register_forward_hook(self._on_key(i)))

    def clear(self) -> None:
        self.hidden, self.scores, self._queries = [], [], {}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    def _recording(self) -> bool:
        return self.model.training or not self.only_training  # evaluation passes of the student are not kept

    def _on_hidden(self, module: nn.Module, args: Any, out: Any) -> None:
        if self._recording():
            self.hidden.append(out[0] if isinstance(out, tuple) else out)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, width = x.shape
        return x.view(b, t, width // self.head_dim, self.head_dim).transpose(1, 2)

    def _on_query(self, i: int):
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            if self._recording():
                self._queries[i] = out

        return hook

    def _on_key(self, i: int):
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            if not self._recording():
                return
            q, k = self._heads(self._queries.pop(i)), self._heads(out)
            self.scores.append(q @ k.transpose(-1, -2) * self.head_dim ** -0.5)

        return hook


@dataclass(frozen=True)
class DistillOptions(ConfigBase):
    """Options shared by every method that learns from the dense teacher."""

    start: str = "pretrained"  # the student starts from the pre-trained model, or from the fine-tuned teacher
    distill: bool = False
    attention_weight: float = 1.0
    hidden_weight: float = 1.0
    prediction_weight: float = 1.0
    task_weight: float = 0.0
    temperature: float = 1.0

    def validate(self) -> None:
        check(self.start in ("pretrained", "finetuned"), "start", f"got {self.start!r}", "use pretrained or finetuned")
        check(self.temperature > 0, "temperature", f"got {self.temperature}", "use a positive temperature")
        weights = (self.attention_weight, self.hidden_weight, self.prediction_weight, self.task_weight)
        check(all(w >= 0 for w in weights), "attention_weight", "loss weights must be >= 0", "use weights >= 0")

    def weights(self, attention: bool = True) -> "DistillWeights":
        """The loss weights (attention switched off where the student's heads cannot match the teacher's)."""
        return DistillWeights(self.attention_weight if attention else 0.0, self.hidden_weight,
                              self.prediction_weight, self.task_weight, self.temperature)


@dataclass(frozen=True)
class DistillWeights:
    attention: float = 1.0
    hidden: float = 1.0
    prediction: float = 1.0
    task: float = 0.0  # the plain task loss (0 in SparseBERT: the teacher's soft labels replace it)
    temperature: float = 1.0


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    target = torch.softmax(teacher.float() / temperature, dim=-1)
    return -(target * torch.log_softmax(student.float() / temperature, dim=-1)).sum(-1).mean()


HeadMap = list[list[int]]  # per student layer, the teacher head each of its heads learns from


def head_mismatch(student_layer: int, student_heads: int, teacher_layer: int, teacher_heads: int) -> ConfigError:
    return ConfigError(
        f"attention distillation matches heads one to one, but student layer {student_layer} has {student_heads} "
        f"head(s) and teacher layer {teacher_layer} has {teacher_heads}, and the student records no map from its "
        "heads to the teacher's", where="attention_weight",
        fix="set --attention-weight 0 (hidden-state and prediction distillation still apply), distil from a teacher "
            "with the student's heads, or for small-dense pass --map-heads (its kept heads learn from the same "
            "teacher heads)")


def check_heads(student_heads: list[int], teacher_heads: list[int], layer_map: list[int],
                head_map: HeadMap | None) -> None:
    """Refuse attention distillation that would not match head for head: a student layer with another head count
    than its teacher layer and no head map, or a head map of the wrong length or naming a head the teacher lacks."""
    for i, j in enumerate(layer_map):
        if head_map is None:
            if student_heads[i] != teacher_heads[j]:
                raise head_mismatch(i, student_heads[i], j, teacher_heads[j])
            continue
        heads = head_map[i] if i < len(head_map) else []
        if len(heads) != student_heads[i] or not all(0 <= h < teacher_heads[j] for h in heads):
            raise ConfigError(f"the head map of student layer {i} is {heads}: it needs one teacher head (of "
                              f"{teacher_heads[j]} in teacher layer {j}) for each of the layer's {student_heads[i]} "
                              "heads", where="head_map", fix="map every kept head to the teacher head it came from")


def attention_term(s: Capture, t: Capture, pair: torch.Tensor, layer_map: list[int],
                   head_map: HeadMap | None = None) -> torch.Tensor:
    """MSE of pre-softmax attention scores, student layer i against teacher layer layer_map[i], head for head (each
    student head against the teacher head `head_map` names for it, when given); never broadcast."""
    total = torch.zeros((), device=pair.device)
    for i, j in enumerate(layer_map):
        teacher = t.scores[j] if head_map is None else t.scores[j][:, head_map[i]]
        if s.scores[i].shape[1] != teacher.shape[1]:
            raise head_mismatch(i, s.scores[i].shape[1], j, t.scores[j].shape[1])
        total = total + nn.functional.mse_loss(s.scores[i].float() * pair, teacher.float() * pair)
    return total


def distill_terms(s: Capture, t: Capture, s_logits: torch.Tensor, t_logits: torch.Tensor,
                  attention_mask: torch.Tensor, labels: torch.Tensor, task: TaskSpec, temperature: float,
                  layer_map: list[int], head_map: HeadMap | None = None,
                  attention: bool = True) -> dict[str, torch.Tensor]:
    """The three loss terms. `layer_map[i]` is the teacher layer matched to student layer i; `head_map` (optional)
    the teacher head of each student head. With `attention` False the attention term is not computed (zero)."""
    mask = attention_mask.float()
    pair = (mask[:, None, :, None] * mask[:, None, None, :])
    tokens = mask[:, :, None]  # padded positions are zeroed in both, so the loss ignores batch padding
    attention_loss = (attention_term(s, t, pair, layer_map, head_map) if attention
                      else torch.zeros((), device=mask.device))
    hidden_map = [0] + [j + 1 for j in layer_map]  # the embedding output, then each matched layer
    hidden = sum(nn.functional.mse_loss(s.hidden[i].float() * tokens, t.hidden[j].float() * tokens)
                 for i, j in enumerate(hidden_map))
    if task.is_regression:
        prediction = nn.functional.mse_loss(s_logits.float().squeeze(-1), labels.float())
    else:
        prediction = soft_cross_entropy(s_logits, t_logits, temperature)
    return {"attention": attention_loss, "hidden": hidden, "prediction": prediction}


@dataclass
class TeacherOutputs:
    """A batch of teacher outputs, shaped like a Capture (so `distill_terms` takes either)."""

    logits: torch.Tensor
    hidden: list[torch.Tensor]
    scores: list[torch.Tensor]


class TeacherCache:
    """Per-example teacher outputs (bf16, unpadded), kept for the life of the process.

    Keyed by (teacher run, data, max length), so every run of a sweep in this process, and every epoch
    after the first, reuses the teacher's forward passes: a sweep pays for the teacher once.
    """

    _shared: dict[str, "TeacherCache"] = {}
    MAX_BYTES = 4 * 1024**3  # beyond this, further examples are recomputed rather than cached

    def __init__(self) -> None:
        self.items: dict[int, tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]] = {}
        self.bytes = 0

    @classmethod
    def for_key(cls, key: str) -> "TeacherCache":
        if key not in cls._shared:
            cls._shared.clear()  # one teacher's outputs at a time: a sweep shares one teacher
            cls._shared[key] = cls()
        return cls._shared[key]

    def get(self, indices: Any, lengths: torch.Tensor, device: torch.device) -> TeacherOutputs | None:
        if indices is None or any(int(i) not in self.items for i in indices):
            return None
        rows = [self.items[int(i)] for i in indices]
        width = int(lengths.max())
        b = len(rows)
        hidden = [torch.zeros(b, width, h.shape[-1]) for h in rows[0][1]]  # widths differ (ELECTRA embeddings)
        scores = [torch.zeros(b, rows[0][2][0].shape[0], width, width) for _ in rows[0][2]]
        for r, (_, hs, ss) in enumerate(rows):
            n = hs[0].shape[0]
            for h, src in zip(hidden, hs):
                h[r, :n] = src.float()
            for s, src in zip(scores, ss):
                s[r, :, :n, :n] = src.float()
        logits = torch.stack([row[0] for row in rows]).float()
        return TeacherOutputs(logits.to(device), [h.to(device) for h in hidden], [s.to(device) for s in scores])

    def put(self, indices: Any, lengths: torch.Tensor, out: TeacherOutputs) -> None:
        if indices is None:
            return
        for r, i in enumerate(indices):
            n = int(lengths[r])
            if self.bytes > self.MAX_BYTES:
                return
            self.bytes += 2 * (sum(h[r, :n].numel() for h in out.hidden) + sum(s[r, :, :n, :n].numel() for s in out.scores))
            self.items[int(i)] = (out.logits[r].detach().to(torch.bfloat16).cpu(),
                                  [h[r, :n].detach().to(torch.bfloat16).cpu() for h in out.hidden],
                                  [s[r, :, :n, :n].detach().to(torch.bfloat16).cpu() for s in out.scores])


def _bf16_round(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


class DistillHook(Hook):
    """Adds the weighted distillation terms; the teacher runs in eval mode without gradients.

    With a `cache_key`, teacher outputs are computed once per training example and reused.
    """

    def __init__(self, teacher: nn.Module, task: TaskSpec, weights: DistillWeights, layer_map: list[int] | None = None,
                 cache_key: str | None = None, head_map: HeadMap | None = None):
        self.teacher, self.task, self.weights = teacher, task, weights
        self.layer_map, self.head_map = layer_map, head_map
        self.cache = TeacherCache.for_key(cache_key) if cache_key else None
        self.last_terms: dict[str, float] = {}

    def on_train_begin(self, state: TrainState) -> None:
        device = next(state.model.parameters()).device
        self.teacher.to(device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.student_capture = Capture(state.model, only_training=True)
        self.teacher_capture = Capture(self.teacher)
        if self.layer_map is None:
            self.layer_map = uniform_layer_map(Arch(state.model).num_layers, Arch(self.teacher).num_layers)
        if self.weights.attention > 0:
            check_heads(kept_heads(state.model), kept_heads(self.teacher), self.layer_map, self.head_map)

    def loss(self, state: TrainState, batch: dict[str, torch.Tensor], labels: torch.Tensor, outputs: Any,
             task: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        w = self.weights
        teacher = self.teacher_outputs(state, batch)
        terms = distill_terms(self.student_capture, teacher, outputs.logits, teacher.logits,
                              batch["attention_mask"], labels, self.task, w.temperature, self.layer_map,
                              self.head_map, attention=w.attention > 0)
        self.student_capture.clear()
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        # the task loss is re-weighted (0 in SparseBERT); terms other hooks added to the total are kept
        return total - (1.0 - w.task) * task + w.attention * terms["attention"] + w.hidden * terms["hidden"] + \
            w.prediction * terms["prediction"]

    def teacher_outputs(self, state: TrainState, batch: dict[str, torch.Tensor]) -> TeacherOutputs:
        lengths = batch["attention_mask"].sum(1).cpu()
        device = batch["attention_mask"].device
        cached = self.cache.get(state.batch_indices, lengths, device) if self.cache else None
        if cached is not None:
            return cached
        with torch.no_grad():
            self.teacher_capture.clear()
            logits = self.teacher(**batch).logits
        out = TeacherOutputs(logits, list(self.teacher_capture.hidden), list(self.teacher_capture.scores))
        if self.cache is None:
            return out
        self.cache.put(state.batch_indices, lengths, out)
        # round like the cache does, so a run gives the same result whether or not its teacher was cached
        return TeacherOutputs(_bf16_round(out.logits), [_bf16_round(h) for h in out.hidden],
                              [_bf16_round(s) for s in out.scores])

    def state_dict(self) -> dict[str, Any]:
        # the teacher is fixed and its cached outputs are recomputed on demand: only the matching and last terms
        return {"layer_map": list(self.layer_map or []), "last_terms": self.last_terms}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.layer_map, self.last_terms = list(state["layer_map"]), dict(state["last_terms"])

    def on_train_end(self, state: TrainState) -> None:
        self.student_capture.remove()
        self.teacher_capture.remove()


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer i learns from teacher layer (i+1)*k - 1 (TinyBERT's uniform mapping; identity when equal)."""
    if teacher_layers < student_layers:
        raise ConfigError(f"the teacher has {teacher_layers} layers, fewer than the student's {student_layers}",
                          fix="distill from a teacher at least as deep as the student")
    step = teacher_layers // student_layers
    return [(i + 1) * step - 1 for i in range(student_layers)]
