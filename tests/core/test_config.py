import pytest

from analysis.core.config import DataConfig, FinetuneConfig, TrainConfig, config_hash, without_defaults
from analysis.core.errors import ConfigError


def test_round_trip_through_dict():
    cfg = FinetuneConfig.from_flat({}, {"dataset": "rte", "train_size": 100, "lr": 3e-5, "text_columns": "a,b"})
    again = FinetuneConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.data.text_columns == ("a", "b")


def test_flat_and_nested_keys_mean_the_same():
    flat = FinetuneConfig.from_flat({"epochs": 2, "dataset": "cola"}, {})
    nested = FinetuneConfig.from_flat({"train": {"epochs": 2}, "data": {"dataset": "cola"}}, {})
    assert flat == nested


def test_flags_override_the_file():
    cfg = FinetuneConfig.from_flat({"epochs": 2, "seed": 3}, {"epochs": 5})
    assert cfg.train.epochs == 5 and cfg.seed == 3


@pytest.mark.parametrize("bad, field", [
    ({"lr": -1e-4}, "lr"), ({"epochs": 0}, "epochs"), ({"train_size": 0}, "train_size"),
    ({"batch_size": 0}, "batch_size"), ({"warmup_ratio": 1.5}, "warmup_ratio"), ({"max_length": 2}, "max_length"),
    ({"lr_schedule": "exponential"}, "lr_schedule"),
])
def test_out_of_range_values_name_the_field(bad, field):
    with pytest.raises(ConfigError) as err:
        FinetuneConfig.from_flat({}, bad)
    assert field in str(err.value) and "Fix:" in str(err.value)


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'.*lr"):
        FinetuneConfig.from_flat({"learning_rate": 1e-4}, {})


def test_wrong_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="expected an integer"):
        FinetuneConfig.from_flat({}, {"train_size": "lots"})


def test_hash_ignores_defaults_but_not_changes():
    base = FinetuneConfig()
    assert without_defaults(base) == {}
    assert config_hash("finetune", base, "1") == config_hash("finetune", FinetuneConfig(), "1")
    assert config_hash("finetune", base, "1") != config_hash("finetune", base.replace(seed=1), "1")
    assert config_hash("finetune", base, "1") != config_hash("finetune", base, "2")
    changed = base.replace(train=TrainConfig(lr=2e-5), data=DataConfig(dataset="rte"))
    assert without_defaults(changed) == {"train": {"lr": 2e-5}, "data": {"dataset": "rte"}}


def test_the_sparsebert_authors_config_sets_their_schedule():
    from pathlib import Path

    from analysis.core.config import load_yaml
    from analysis.methods.pruning.base import PruneConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "sparsebert-authors.yaml"
    cfg = PruneConfig.from_flat(load_yaml(path), {"dataset": "mrpc", "sparsity": 0.95})
    assert (cfg.train.lr, cfg.train.lr_schedule, cfg.train.warmup_ratio) == (3e-5, "constant", 0.0)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.data.max_length) == (12, 32, 128)
    assert cfg.method == "sparsebert" and cfg.sparsity == 0.95


def test_a_flag_overrides_one_field_of_a_nested_group_and_keeps_the_files_others():
    """`sweep pruning --config authors.yaml --precision fp32` once replaced the file's whole prune.train group
    (its 12 epochs and constant 3e-5 silently became the defaults): overrides merge at every depth."""
    from analysis.studies.pruning_sweep import PruningSweepConfig

    cfg = PruningSweepConfig.from_flat({"epochs": 12, "lr": 3e-5, "lr_schedule": "constant", "warmup_ratio": 0.0},
                                       {"precision": "fp32", "dataset": "stsb", "methods": ("random",)})
    train = cfg.prune.train
    assert (train.epochs, train.lr, train.lr_schedule, train.warmup_ratio, train.precision) == (
        12, 3e-5, "constant", 0.0, "fp32")
    assert cfg.prune.data.dataset == "stsb" and cfg.methods == ("random",)
