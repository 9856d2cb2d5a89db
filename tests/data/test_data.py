import numpy as np
import pytest

from analysis.core.config import DataConfig
from analysis.core.errors import DataError
from analysis.data import tasks as data

LABELLED = [n for n in data.dataset_names() if data.get_card(n).task != "unlabeled"]


@pytest.mark.parametrize("name", data.dataset_names())
def test_every_card_loads_from_the_local_root(name):
    card = data.get_card(name)
    for split in card.splits:
        ds = data.load_split(DataConfig(dataset=name), split)
        assert len(ds) > 0 and len(ds.texts) == len(card.text_columns)
        if card.task == "classification":
            assert ds.labels.min() >= 0 and ds.labels.max() < card.num_labels
            assert len(np.unique(ds.labels)) == card.num_labels
        elif card.task == "regression":
            assert ds.labels.dtype == np.float32


def test_required_datasets_are_registered():
    required = {"sst2", "sst2-phrases", "sst5", "sst5-phrases", "imdb", "cola", "mrpc", "rte", "stsb", "mr",
                "cr", "subj", "mpqa", "wikitext2"}
    assert required <= set(data.dataset_names())


def test_known_split_sizes():
    assert len(data.load_split(DataConfig(dataset="sst2"), "train")) == 67349
    assert len(data.load_split(DataConfig(dataset="sst2"), "validation")) == 872
    assert len(data.load_split(DataConfig(dataset="mrpc"), "train")) == 3668
    assert len(data.load_split(DataConfig(dataset="sst5-phrases"), "train")) == 159274


def test_subsample_is_deterministic_stratified_and_nested():
    full = data.load_split(DataConfig(dataset="sst2"), "train")
    a = data.subsample(full, 1000, seed=3)
    b = data.subsample(full, 1000, seed=3)
    c = data.subsample(full, 1000, seed=4)
    assert np.array_equal(a.indices, b.indices) and not np.array_equal(a.indices, c.indices)
    assert a.texts == b.texts
    assert abs(a.labels.mean() - full.labels.mean()) < 0.002  # class shares kept
    small = data.subsample(full, 300, seed=3)
    assert set(small.indices) <= set(a.indices)  # growing sizes nest under one seed


def test_train_size_larger_than_split_is_an_error():
    with pytest.raises(DataError, match="train_size=5000 is larger than the rte/train split \\(2490 rows\\)"):
        data.load_task(DataConfig(dataset="rte", train_size=5000), seed=0)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown dataset 'sst3'.*sst2"):
        data.load_task(DataConfig(dataset="sst3"), seed=0)


def test_dataset_without_training_split_is_an_error(monkeypatch):
    import dataclasses

    from analysis.data import cards as card_registry

    cards = dict(card_registry._cards())
    cards["evalonly"] = dataclasses.replace(cards["qnli"], name="evalonly", hub=None)
    monkeypatch.setattr(card_registry, "_cards", lambda: cards)
    with pytest.raises(DataError, match="'evalonly' has no training split"):
        data.load_task(DataConfig(dataset="evalonly"), seed=0)
    # QNLI's training split exists only on the hub: offline, the message says so
    with pytest.raises(DataError, match="qnli/train is not mirrored locally .* hub is offline"):
        data.load_task(DataConfig(dataset="qnli"), seed=0)


def test_missing_local_file_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNESCOPE_DATA", str(tmp_path))
    with pytest.raises(DataError, match="not in the local data root.*hub is offline"):
        data.load_split(DataConfig(dataset="sst2"), "train")


def test_user_file_round_trip(sentiment_files):
    train, evaluation = sentiment_files
    task = data.load_task(DataConfig(dataset=str(train), eval_file=str(evaluation)), seed=0)
    assert task.card.task == "classification" and task.card.labels == ("0", "1")
    assert len(task.train) == 48 and len(task.eval) == 12


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_user_file_errors(tmp_path):
    ok = _write(tmp_path / "ok.csv", "text,label\na,0\nb,1\n")
    cases = [
        (DataConfig(dataset=_write(tmp_path / "cols.csv", "sentence,y\na,0\nb,1\n"), eval_file=ok,
                    text_columns=("text",), label_column="label"), "label column 'label' not found"),
        (DataConfig(dataset=ok, eval_file=_write(tmp_path / "e.csv", "text,label\n,0\n")),
         "empty or non-text value in column 'text' at line 2"),
        (DataConfig(dataset=ok, eval_file=_write(tmp_path / "bad.csv", b"text,label\n\xff\xfe,0\n")),
         "not UTF-8 \\(bad byte at line 2\\)"),
        (DataConfig(dataset=ok, eval_file=_write(tmp_path / "lab.csv", "text,label\na,7\n")),
         "label '7' at line 2 .* outside the label set"),
        (DataConfig(dataset=ok), "no evaluation file"),
        (DataConfig(dataset=_write(tmp_path / "empty.csv", ""), eval_file=ok), "is empty"),
        (DataConfig(dataset=str(tmp_path / "missing.csv"), eval_file=ok), "does not exist"),
    ]
    for cfg, message in cases:
        with pytest.raises(DataError, match=message):
            data.load_task(cfg, seed=0)


def test_regression_user_file_is_inferred(tmp_path):
    f = _write(tmp_path / "r.tsv", "sentence1\tsentence2\tscore\na b\tc d\t1.5\ne f\tg h\t3.25\n")
    task = data.load_task(DataConfig(dataset=f, eval_file=f), seed=0)
    assert task.card.task == "regression" and task.card.text_columns == ("sentence1", "sentence2")
    assert task.card.metrics == ("pearson", "spearman")


def test_an_eval_file_with_a_registered_dataset_is_honoured(tmp_path):
    from analysis.core.config import DataConfig
    from analysis.core.errors import DataError
    from analysis.data.tasks import fingerprint, load_task

    held = tmp_path / "mine.tsv"
    held.write_text("sentence\tlabel\na fine film\t1\na dull film\t0\nlovely\t1\n", encoding="utf-8")
    task = load_task(DataConfig(dataset="sst2", eval_file=str(held)), 0, need_train=False)
    assert task.eval_split == "file" and task.eval.texts[0] == ["a fine film", "a dull film", "lovely"]
    assert list(task.eval.labels) == [1, 0, 1] and task.card.name == "sst2"
    assert fingerprint(DataConfig(dataset="sst2", eval_file=str(held))) != fingerprint(DataConfig(dataset="sst2"))
    held.write_text("sentence\tlabel\nodd\t7\n", encoding="utf-8")
    with pytest.raises(DataError, match="outside the label set"):
        load_task(DataConfig(dataset="sst2", eval_file=str(held)), 0, need_train=False)
    with pytest.raises(DataError, match="both --eval-split"):
        load_task(DataConfig(dataset="sst2", eval_file=str(held), eval_split="validation"), 0, need_train=False)
