"""`--dry-run` on every experiment command, and one run id for every spelling of one config (method options are
validated and normalised before they are hashed)."""

from __future__ import annotations

import json

import pytest

from analysis.cli.base import main
from analysis.store.index import RunStore


def run_cli(argv: list[str], capsys) -> dict:
    code = main(argv + ["--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out["_code"] = code
    return out


CHILD_F = ["finetune", "--method", "child-f", "--dataset", "rte", "--train-size", "100", "--dry-run"]


def test_the_default_p_given_or_not_is_one_run(capsys, tmp_path):
    bare = run_cli(CHILD_F, capsys)
    assert bare["_code"] == 0 and bare["status"] == "dry-run" and bare["config"]["options"] == {}
    assert run_cli(CHILD_F + ["--p", "0.3"], capsys)["run_id"] == bare["run_id"]
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("method: child-f\ndataset: rte\ntrain_size: 100\noptions:\n  p: 0.3\n")
    flat.write_text("method: child-f\ndataset: rte\ntrain_size: 100\np: 3.0e-1\n")
    assert run_cli(["finetune", "--config", str(nested), "--dry-run"], capsys)["run_id"] == bare["run_id"]
    assert run_cli(["finetune", "--config", str(flat), "--dry-run"], capsys)["run_id"] == bare["run_id"]


def test_an_integer_in_yaml_and_a_flag_are_one_run(capsys, tmp_path):
    config = tmp_path / "p1.yaml"
    config.write_text("method: child-f\ndataset: rte\ntrain_size: 100\noptions:\n  p: 1\n")
    from_yaml = run_cli(["finetune", "--config", str(config), "--dry-run"], capsys)
    from_flag = run_cli(CHILD_F + ["--p", "1"], capsys)
    assert from_yaml["run_id"] == from_flag["run_id"] and from_flag["config"]["options"] == {"p": 1.0}
    assert run_cli(CHILD_F + ["--p", "0.5"], capsys)["run_id"] != from_flag["run_id"]


def test_a_bad_option_is_refused_before_anything_is_hashed(capsys):
    out = run_cli(CHILD_F + ["--p", "1.5"], capsys)
    assert out["_code"] == 2 and "(0, 1]" in out["error"]


@pytest.mark.parametrize("argv", [
    ["prune", "--method", "magnitude", "--sparsity", "0.5", "--dataset", "rte", "--train-size", "100"],
    ["sweep", "pruning", "--methods", "magnitude,random", "--sparsities", "0.5", "--seeds", "0", "--dataset", "rte",
     "--train-size", "100"],
    ["scale", "--dataset", "rte", "--sizes", "100", "--seeds", "0", "--no-include-full"],
    ["probe", "default", "--probes", "cka"],
    ["heads", "default", "--max-examples", "10"],
])
def test_every_experiment_command_has_a_dry_run_that_runs_nothing(argv, capsys, private_store):
    out = run_cli(argv + ["--dry-run"], capsys)
    assert out["_code"] == 0 and out["status"] == "dry-run", out
    assert len(out["run_id"]) == 16 and out["config"] and out["stored"] is None
    assert RunStore(private_store).list() == []  # nothing claimed, nothing written
    again = run_cli(argv + ["--dry-run"], capsys)
    assert again["run_id"] == out["run_id"]


def test_the_dry_run_shows_the_precision_this_machine_would_use(capsys):
    from analysis.core.precision import resolve

    out = run_cli(CHILD_F, capsys)
    assert out["config"]["train"]["precision"] == resolve("auto", "cpu")
    fp32 = run_cli(CHILD_F + ["--precision", "fp32"], capsys)
    assert fp32["config"]["train"]["precision"] == "fp32"
