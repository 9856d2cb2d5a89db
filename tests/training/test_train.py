import numpy as np
import torch

from analysis.data.tokens import Encoded, batch_order, collate
from analysis.training.metrics import compute


def test_batch_order_covers_every_example_once():
    lengths = np.random.default_rng(0).integers(1, 50, size=1003)
    for shuffle, bucket in [(True, True), (True, False), (False, True), (False, False)]:
        batches = batch_order(lengths, 32, seed=1, shuffle=shuffle, bucket=bucket)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1003))


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(1, 100, size=5000)

    def padding(batches):
        return sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches)

    assert padding(batch_order(lengths, 32, 0, True, True)) < 0.2 * padding(batch_order(lengths, 32, 0, True, False))


def test_shuffle_depends_on_seed_only():
    lengths = np.arange(100)
    a, b = batch_order(lengths, 10, 3, True, True), batch_order(lengths, 10, 3, True, True)
    c = batch_order(lengths, 10, 4, True, True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_collate_pads_to_the_longest_in_batch():
    enc = Encoded(np.array([5, 6, 7, 8, 9], np.int32), np.array([0, 2, 5]), np.array([0, 0, 0, 1, 1], np.int8), None)
    batch = collate(enc, np.array([0, 1]), pad_id=0, with_types=True)
    assert batch["input_ids"].tolist() == [[5, 6, 0], [7, 8, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 1, 1]]


def test_metrics_match_references():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    logits = rng.normal(size=(200, 2)) + np.eye(2)[gold]
    pred = logits.argmax(1)
    out = compute(("accuracy", "f1", "matthews"), logits, gold)
    assert out["accuracy"] == (pred == gold).mean()
    assert np.isclose(out["f1"], f1_score(gold, pred)) and np.isclose(out["matthews"], matthews_corrcoef(gold, pred))
    y = rng.normal(size=100)
    values = (y + rng.normal(size=100)).reshape(-1, 1)
    reg = compute(("pearson", "spearman"), values, y)
    assert np.isclose(reg["pearson"], pearsonr(values[:, 0], y)[0])
    assert np.isclose(reg["spearman"], spearmanr(values[:, 0], y)[0])


def test_regression_task_trains(tmp_path, tiny_models):
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs

    rows = "".join(f"w{i} x,w{i} y,{i % 5 + 0.5}\n" for i in range(40))
    f = tmp_path / "r.csv"
    f.write_text("sentence1,sentence2,score\n" + rows)
    cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(f), "eval_file": str(f),
                                        "epochs": 1, "batch_size": 8})
    rec = jobs.execute("finetune", cfg, save_weights=False).record
    assert set(rec.metrics) == {"pearson", "spearman"} and rec.summary["metric"] == "pearson"
    assert torch.isfinite(torch.tensor(rec.metrics["pearson"]))


def test_best_epoch_is_chosen_on_the_held_out_loss_or_metric(tiny_models, sentiment_files):
    """select_on: "loss" keeps the epoch with the lowest held-out loss, "metric" the first with the best metric,
    "metric-then-loss" the best metric with ties broken by the loss (the held-out loss is recorded always)."""
    from analysis.core.config import FinetuneConfig
    from analysis.runs import experiment as jobs

    train, evaluation = sentiment_files
    for select_on in ("loss", "metric", "metric-then-loss"):
        cfg = FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                            "eval_file": str(evaluation), "epochs": 6, "batch_size": 8, "lr": 3e-3,
                                            "holdout_fraction": 0.25, "select_on": select_on})
        summary = jobs.execute("finetune", cfg, save_weights=False).record.summary
        epochs = summary["epoch_metrics"]
        losses = [e["holdout_loss"] for e in epochs]
        accuracies = [e["holdout_accuracy"] for e in epochs]
        keys = {"loss": [-x for x in losses], "metric": accuracies,
                "metric-then-loss": list(zip(accuracies, [-x for x in losses]))}[select_on]
        best = max(range(len(keys)), key=lambda i: (keys[i], -i))  # the first of equals
        assert summary["chosen_epoch"] == epochs[best]["epoch"]
        assert len(set(losses)) == len(losses)  # the loss is continuous, so it does not tie like 12-example accuracy


def test_metric_ties_are_broken_by_the_loss_and_reset_patience():
    from types import SimpleNamespace

    from analysis.training.loop import BestEpoch, held_out_score

    task, model = SimpleNamespace(metrics=("accuracy",)), torch.nn.Linear(1, 1)
    history = [(0.6, 0.68), (0.6, 0.66), (0.6, 0.64), (0.6, 0.62), (0.8, 0.54), (0.7, 0.52)]  # (accuracy, loss)
    chosen = {}
    for select_on in ("metric", "loss", "metric-then-loss"):
        best = BestEpoch(patience=3)
        for epoch, (accuracy, loss) in enumerate(history, 1):
            best.update(held_out_score({"accuracy": accuracy, "loss": loss}, task, select_on), epoch, model)
            if best.stop:
                break
        chosen[select_on] = (best.best_epoch, epoch)
    assert chosen["metric"] == (1, 4)  # three ties count as no gain: stopped before the accuracy rose
    assert chosen["loss"] == (6, 6)
    assert chosen["metric-then-loss"] == (5, 6)


def test_a_checkpoint_written_before_select_on_resumes_its_best_score():
    from analysis.training.checkpoint import _load_best
    from analysis.training.loop import BestEpoch

    best = BestEpoch(patience=3)
    _load_best(best, {"best": 0.8, "best_epoch": 2, "bad_epochs": 1, "state": None})  # one float, as before
    assert best.best == [0.8] and best.best_epoch == 2 and best.bad_epochs == 1
    _load_best(best, {"best": [0.8, -0.4], "best_epoch": 3, "bad_epochs": 0, "state": None})
    assert best.best == [0.8, -0.4]


def _lr_sequence(model, schedule: str, warmup: int, total: int, lr: float = 1e-3) -> list[float]:
    """The learning rate each of `total` optimizer steps uses under `schedule`."""
    from analysis.core.config import TrainConfig
    from analysis.training.loop import lr_schedule, make_optimizer

    optimizer = make_optimizer(model, TrainConfig(lr=lr))
    scheduler = lr_schedule(optimizer, schedule, warmup, total)
    rates = []
    for _ in range(total):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


def test_lr_schedules_warm_up_then_hold_or_decay(tiny_models):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_models["bert"])
    lr, warmup, total = 1e-3, 4, 20
    linear = _lr_sequence(model, "linear", warmup, total, lr)
    expected = [lr * (s + 1) / warmup if s < warmup else lr * (total - s) / (total - warmup) for s in range(total)]
    assert np.allclose(linear, expected)  # today's schedule, unchanged
    constant = _lr_sequence(model, "constant", warmup, total, lr)
    assert np.allclose(constant[:warmup], expected[:warmup]) and np.allclose(constant[warmup:], lr)
    assert np.allclose(_lr_sequence(model, "constant", 0, total, lr), lr)  # BertAdam's schedule 'none'
    cosine = _lr_sequence(model, "cosine", warmup, total, lr)
    assert np.allclose(cosine[:warmup], expected[:warmup]) and cosine[warmup] == lr
    assert all(a > b for a, b in zip(cosine[warmup:], cosine[warmup + 1:]))
    assert np.isclose(cosine[warmup + (total - warmup) // 2], lr / 2)
    assert cosine[-1] < 0.02 * lr  # and 0 after the last step (below)


def test_lr_schedule_is_a_validated_setting_used_by_the_loop(tiny_models, sentiment_files):
    import pytest

    from analysis.core.config import LR_SCHEDULES, FinetuneConfig, TrainConfig
    from analysis.core.errors import ConfigError
    from analysis.runs import experiment as jobs
    from analysis.store.index import RunStore
    from analysis.training.loop import LR_SCHEDULES as IMPLEMENTED

    assert set(LR_SCHEDULES) == set(IMPLEMENTED)
    with pytest.raises(ConfigError, match="lr_schedule.*'step'.*constant"):
        TrainConfig(lr_schedule="step")
    train, evaluation = sentiment_files
    base = {"model": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation), "epochs": 2,
            "batch_size": 8, "lr": 1e-3}  # 48 rows: 12 steps, the lr logged at steps 10 and 12
    assert jobs.run_id("finetune", FinetuneConfig.from_flat({}, base)) == jobs.run_id(
        "finetune", FinetuneConfig.from_flat({}, {**base, "lr_schedule": "linear"}))  # the default keeps old ids
    logged = {}
    for schedule in ("constant", "cosine"):
        cfg = FinetuneConfig.from_flat({}, {**base, "lr_schedule": schedule, "warmup_ratio": 0})
        rid = jobs.execute("finetune", cfg, save_weights=False).record.run_id
        logged[schedule] = [row["lr"] for row in RunStore().read_metrics(rid) if "lr" in row]
    assert len(logged["constant"]) == 2 and np.allclose(logged["constant"], 1e-3)
    assert 0 < logged["cosine"][0] < 1e-3 and logged["cosine"][-1] == 0.0
