"""Where the task lives: a linear probe of the task label on each layer's mean-pooled states
(trained on up to 2,000 training examples, evaluated on the dev set)."""

from __future__ import annotations

from typing import Any

from analysis.core.config import DataConfig
from analysis.data.tasks import load_split, subsample
from analysis.methods.probes.base import PROBES, Probe, ProbeTarget
from analysis.methods.probes.features import text_features
from analysis.methods.probes.transfer import logistic_accuracy

TRAIN_EXAMPLES = 2000


@PROBES.register("layer-probe")
class LayerProbe(Probe):
    def not_applicable(self, target: ProbeTarget) -> str | None:
        if target.dataset is None:
            return "the pre-trained model has no task: give one with --task (e.g. --task sst2), or probe a run"
        from analysis.data.tasks import get_card, is_user_file

        card = None if is_user_file(target.dataset) else get_card(target.dataset)
        if card is None or card.task != "classification" or len(card.text_columns) != 1:
            return "the layer probe covers single-sentence classification tasks"
        return None

    def run(self, target: ProbeTarget) -> dict[str, Any]:
        cfg = DataConfig(dataset=target.dataset or "")
        train = load_split(cfg, "train")
        train = subsample(train, min(TRAIN_EXAMPLES, len(train)), seed=0)
        dev = load_split(cfg, "validation")
        tr = text_features(target, f"{target.dataset}-train-{TRAIN_EXAMPLES}", train.texts[0])
        dv = text_features(target, f"{target.dataset}-dev", dev.texts[0])
        return {"accuracy_per_layer": [logistic_accuracy(tr[i], train.labels, dv[i], dev.labels)
                                       for i in range(len(tr))], "train_examples": len(train)}
