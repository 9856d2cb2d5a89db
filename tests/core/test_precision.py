"""Precision and threads chosen for the hardware: what `auto` picks on each kind of machine (capability and probe
mocked), that the resolved precision is part of a run's id and record, and how threads are shared."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.cli.base import main
from analysis.core import precision
from analysis.core.config import FinetuneConfig, recorded_precision
from analysis.core.errors import ConfigError
from analysis.runs import experiment as jobs


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a machine: its CPU capability and flags, the probe's bf16 speed-up, CUDA and its bf16."""

    def set_machine(capability="AVX2", flags=(), speedup=0.02, cuda=False, cuda_bf16=False, arch="x86_64"):
        probes = []
        monkeypatch.setattr(precision, "cpu_capability", lambda: capability)
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(precision.platform, "machine", lambda: arch)
        monkeypatch.setattr(precision.platform, "system", lambda: "Linux")

        def probe(refresh=False):
            probes.append(1)
            return {"fp32_gflops": 40.0, "bf16_gflops": 40.0 * speedup, "bf16_speedup": speedup}

        monkeypatch.setattr(precision, "cpu_probe", probe)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
        return probes

    return set_machine


def test_an_avx2_only_cpu_trains_in_fp32_without_probing(machine):
    probes = machine(capability="AVX2", flags=("avx2", "fma"))
    assert precision.resolve("auto", "cpu") == "fp32"
    assert probes == []  # no bf16 hardware: nothing to confirm


def test_an_amx_cpu_trains_in_bf16(machine):
    machine(capability="AMX", flags=("avx512f", "amx_bf16", "amx_tile"), speedup=3.0)
    assert precision.resolve("auto", "cpu") == "bf16"


def test_an_avx512_bf16_cpu_trains_in_bf16_when_the_probe_confirms(machine):
    machine(capability="AVX512", flags=("avx512f", "avx512_bf16"), speedup=2.2)
    assert precision.resolve("auto", "cpu") == "bf16"


def test_bf16_hardware_that_the_probe_finds_slow_trains_in_fp32(machine):
    machine(capability="AVX512", flags=("avx512f", "avx512_bf16"), speedup=1.05)
    assert precision.resolve("auto", "cpu") == "fp32"


def test_cuda_with_bf16_trains_in_bf16_and_without_in_fp16(machine):
    machine(cuda=True, cuda_bf16=True)
    assert precision.resolve("auto", "cuda") == "bf16"
    machine(cuda=True, cuda_bf16=False)
    assert precision.resolve("auto", "cuda") == "fp16"
    assert precision.resolve("auto", "auto") == "fp16"  # the device `auto` is CUDA here


def test_an_explicit_precision_is_kept_and_a_wrong_one_refused(machine):
    machine(capability="AVX2")
    assert precision.resolve("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="unknown precision"):
        precision.resolve("fp8", "cpu")
    with pytest.raises(ConfigError, match="precision"):
        FinetuneConfig.from_flat({}, {"precision": "half"})


def test_the_fp16_gradient_scaler_is_on_only_for_fp16_on_cuda():
    assert not precision.grad_scaler("cpu", "fp16").is_enabled()
    assert not precision.grad_scaler("cpu", "bf16").is_enabled()


def test_the_probe_runs_once_per_machine_and_is_cached_machine_wide(monkeypatch, tmp_path):
    calls = []

    def fake(dtype, size=512, seconds=0.1, device="cpu", autocast=False, rounds=3):
        calls.append(dtype)
        return 100.0 if dtype == torch.bfloat16 else 40.0

    monkeypatch.setattr(precision, "matmul_gflops", fake)
    monkeypatch.setattr(precision, "_PROBED", {})
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    first = precision.cpu_probe()
    assert first["bf16_speedup"] == pytest.approx(2.5) and len(calls) == 2
    cached = json.loads((tmp_path / "cache" / "precision-probe.json").read_text())
    assert precision.machine_key() in cached
    monkeypatch.setattr(precision, "_PROBED", {})  # a new process: read from the store, not measured again
    assert precision.cpu_probe()["bf16_speedup"] == pytest.approx(2.5) and len(calls) == 2


def test_the_real_probe_is_quick_and_says_something():
    import time

    start = time.perf_counter()
    result = precision.cpu_probe(refresh=True)
    assert time.perf_counter() - start < 5  # "sub-second" on an idle machine; a loaded CI core gets slack
    assert result["fp32_gflops"] > 0 and result["bf16_gflops"] > 0


def tiny_config(tiny_models, sentiment_files, **flags):
    train, evaluation = sentiment_files
    return FinetuneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(train),
                                         "eval_file": str(evaluation), "epochs": 1, "batch_size": 8, **flags})


def test_the_resolved_precision_enters_the_run_id_and_the_record(machine, tiny_models, sentiment_files):
    machine(capability="AVX2")  # auto -> fp32 here
    config = tiny_config(tiny_models, sentiment_files)
    assert config.train.precision == "auto"
    auto_id = jobs.run_id("finetune", config)
    assert auto_id == jobs.run_id("finetune", tiny_config(tiny_models, sentiment_files, precision="fp32"))
    assert auto_id != jobs.run_id("finetune", tiny_config(tiny_models, sentiment_files, precision="bf16"))
    outcome = jobs.execute("finetune", config, save_weights=False)
    record = outcome.record
    assert record.run_id == auto_id and record.config["train"]["precision"] == "fp32"
    assert record.summary["precision"] == "fp32"
    assert json.loads((record.path / "record.json").read_text())["precision"] == "fp32"
    # on a machine where auto means bf16, the same config is another run: never served the fp32 one
    machine(capability="AMX", flags=("amx_bf16",), speedup=3.0)
    assert jobs.run_id("finetune", config) != auto_id
    bf16 = jobs.execute("finetune", config, save_weights=False)
    assert not bf16.cached and bf16.record.summary["precision"] == "bf16"


def test_fp16_trains_on_the_cpu_too(tiny_models, sentiment_files):
    record = jobs.execute("finetune", tiny_config(tiny_models, sentiment_files, precision="fp16"),
                          save_weights=False).record
    assert record.status == "done" and record.summary["precision"] == "fp16"


def test_the_old_bf16_switch_is_an_alias_of_precision(machine, tiny_models, sentiment_files, capsys, tmp_path):
    machine(capability="AVX2")
    train, evaluation = sentiment_files
    common = ["finetune", "--model", str(tiny_models["bert"]), "--dataset", str(train), "--eval-file",
              str(evaluation), "--epochs", "1", "--batch-size", "8", "--json"]

    def run_id_of(extra):
        assert main(common + extra) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]

    fp32 = run_id_of(["--precision", "fp32"])
    assert run_id_of(["--no-bf16"]) == fp32 and run_id_of([]) == fp32  # auto is fp32 on this (mocked) CPU
    yaml_file = tmp_path / "old.yaml"
    yaml_file.write_text("train:\n  bf16: false\n")
    assert run_id_of(["--config", str(yaml_file)]) == fp32
    assert run_id_of(["--bf16"]) != fp32


def test_records_from_before_the_setting_read_as_bf16():
    old = {"train": {"bf16": True, "epochs": 3.0}, "data": {"dataset": "sst2"}}
    assert FinetuneConfig.from_dict(old).train.precision == "bf16"
    assert FinetuneConfig.from_dict({"train": {"bf16": False}}).train.precision == "fp32"
    assert recorded_precision(old) == "bf16" and recorded_precision({"target": "default"}) is None


def test_threads_are_the_usable_cores_shared_among_workers(monkeypatch):
    monkeypatch.setattr(precision.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("PRUNESCOPE_WORKERS", raising=False)
    assert precision.thread_count() == 4
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "2")
    assert precision.thread_count() == 2
    assert precision.thread_count(workers=3) == 1
    assert precision.thread_count(threads=3) == 3  # a flag overrides
    monkeypatch.setenv("PRUNESCOPE_WORKERS", "8")
    assert precision.thread_count() == 1  # never below one


def test_set_threads_sets_torch_and_restores(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert precision.set_threads(threads=1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bench_train_reports_the_median_round_and_mfu():
    from analysis.bench.core import median_round, mfu

    rounds = [{"examples_per_second": v, "arm": i} for i, v in enumerate([130.0, 150.0, 120.0])]
    chosen = median_round(rounds)
    assert chosen["arm"] == 0 and chosen["examples_per_second_rounds"] == [130.0, 150.0, 120.0]
    assert median_round(rounds[:2])["arm"] == 0  # an even count takes the lower middle
    assert mfu(10_000_000, 1000.0, 120.0) == pytest.approx(6e10 / 1.2e11)
