"""Benchmarks (`python -m analysis bench NAME --json`): measured numbers, never asserted in tests.

Each arm runs in its own spawned process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import resource
import tempfile
import time
from typing import Any, Callable

from analysis.core.config import DataConfig, ModelConfig, TrainConfig
from analysis.core.registry import Registry
from analysis.reports.latency import time_passes

BENCHES: Registry[Callable[[argparse.Namespace], dict[str, Any]]] = Registry("benchmark", ("analysis.bench",))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_subprocess(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run fn(*args) in a fresh spawned process and return its result dict."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


# ----------------------------------------------------------------------------------------------
# bench train: our loop vs the Hugging Face Trainer on the same config


def _matmul_peak(precision: str) -> float:
    """This process's measured matmul GFLOP/s (1024 x 1024, its threads) in `precision`: the MFU denominator."""
    import torch

    from analysis.core.precision import matmul_gflops

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return matmul_gflops(dtype, size=1024, seconds=0.3, autocast=dtype != torch.float32)


def non_embedding_params(model: Any) -> int:
    """Parameters outside the embedding tables: the 6 N in the 6 N tokens/s FLOP count of training."""
    import torch

    embedded = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return int(sum(p.numel() for p in model.parameters() if id(p) not in embedded))


def mfu(params: int, tokens_per_second: float, peak_gflops: float) -> float:
    """Model FLOPs utilisation: 6 x non-embedding parameters x tokens/s over the measured matmul peak."""
    return 6 * params * tokens_per_second / (peak_gflops * 1e9) if peak_gflops > 0 else float("nan")


def _our_loop(model_cfg: dict, data_cfg: dict, train_cfg: dict, seed: int, threads: int | None = None) -> dict[str, Any]:
    import torch

    from analysis.core.precision import resolve, set_threads
    from analysis.runs.finetune import load_inputs
    from analysis.training.loop import fit

    set_threads(threads=threads)
    inputs = load_inputs(ModelConfig.from_dict(model_cfg), DataConfig.from_dict(data_cfg), seed)
    cfg = TrainConfig.from_dict(train_cfg)
    precision = resolve(cfg.precision, "cpu")
    params = non_embedding_params(inputs.model)
    result = fit(inputs.model, inputs.train, inputs.eval, inputs.task, cfg.replace(precision=precision), seed,
                 torch.device("cpu"))
    tokens_per_second = result.tokens_seen / result.train_seconds
    peak = _matmul_peak(precision)
    return {"examples_per_second": result.examples_per_second, "train_seconds": result.train_seconds,
            "tokens_per_second": tokens_per_second, "metrics": result.metrics, "peak_rss_mb": peak_rss_mb(),
            "precision": precision, "requested_precision": cfg.precision, "threads": torch.get_num_threads(),
            "non_embedding_params": params, "matmul_peak_gflops": peak, "mfu": mfu(params, tokens_per_second, peak)}


def _hf_trainer(model_cfg: dict, data_cfg: dict, train_cfg: dict, seed: int, best: bool = False,
                threads: int | None = None) -> dict[str, Any]:
    """The HF Trainer on the same data and hyper-parameters: its defaults (fp32, random order, padding per batch),
    or (`best`) at its best settings for this machine: bf16 only where bf16 is fast here, length-grouped batches."""
    import datasets
    import numpy as np
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from analysis.core.precision import resolve, set_threads
    from analysis.data.tasks import load_task
    from analysis.models.loading import build_model
    from analysis.training import metrics as task_metrics
    from analysis.training.loop import set_seed

    set_threads(threads=threads)
    dcfg, tcfg = DataConfig.from_dict(data_cfg), TrainConfig.from_dict(train_cfg)
    data = load_task(dcfg, seed)
    set_seed(seed)
    model, tokenizer = build_model(ModelConfig.from_dict(model_cfg), data.card.num_labels)
    params = non_embedding_params(model)

    def to_hf(ds) -> datasets.Dataset:
        enc = tokenizer(*ds.texts, truncation=True, max_length=dcfg.max_length)
        return datasets.Dataset.from_dict({**enc, "labels": ds.labels.tolist()})

    train, evaluation = to_hf(data.train), to_hf(data.eval)
    tokens = sum(len(ids) for ids in train["input_ids"])
    total = math.ceil(tcfg.epochs * math.ceil(len(train) / tcfg.batch_size))
    bf16 = best and resolve("auto", "cpu") == "bf16"
    extra: dict[str, Any] = {"bf16": bf16, "train_sampling_strategy": "group_by_length"} if best else {}
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=tcfg.batch_size, per_device_eval_batch_size=tcfg.eval_batch_size,
            learning_rate=tcfg.lr, num_train_epochs=tcfg.epochs, weight_decay=tcfg.weight_decay,
            warmup_steps=int(tcfg.warmup_ratio * total), max_grad_norm=tcfg.max_grad_norm, seed=seed,
            report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True, **extra,
        )
        trainer = Trainer(model=model, args=args, train_dataset=train,
                          data_collator=DataCollatorWithPadding(tokenizer))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        # predicted in dataset order: with group_by_length the Trainer also groups evaluation batches, and its
        # predictions come back in that shuffled order (scored against the labels they read as chance)
        predict_args = TrainingArguments(output_dir=out, per_device_eval_batch_size=tcfg.eval_batch_size,
                                         report_to="none", disable_tqdm=True, use_cpu=True, bf16=bf16)
        logits = Trainer(model=model, args=predict_args, data_collator=DataCollatorWithPadding(tokenizer)).predict(
            evaluation).predictions
    scores = task_metrics.compute(data.card.metrics, np.asarray(logits), data.eval.labels)
    precision = "bf16" if bf16 else "fp32"
    tokens_per_second = tokens * tcfg.epochs / seconds
    peak = _matmul_peak(precision)
    return {"examples_per_second": len(train) * tcfg.epochs / seconds, "train_seconds": seconds,
            "tokens_per_second": tokens_per_second, "metrics": scores, "peak_rss_mb": peak_rss_mb(),
            "precision": precision, "settings": "best for this machine: " + ", ".join(f"{k}={v}" for k, v in extra.items())
            if best else "Trainer defaults", "threads": torch.get_num_threads(), "non_embedding_params": params,
            "matmul_peak_gflops": peak, "mfu": mfu(params, tokens_per_second, peak)}


@BENCHES.register("train")
def bench_train(args: argparse.Namespace) -> dict[str, Any]:
    """Our loop vs the HF Trainer, two pairs: each with its defaults, and each at its best settings here. Our best
    settings are our defaults (`--precision auto`), so one run of ours serves both pairs unless --precision differs.

    The best pair is close, so it runs `--repeats` rounds, its two arms alternating (a slow spell of a shared
    machine then hits both), and each arm reports its median round; every round's figure is kept beside it."""
    model_cfg = ModelConfig(model=args.model).to_dict()
    data_cfg = DataConfig(dataset=args.dataset, train_size=args.train_size).to_dict()
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr).to_dict()
    rounds: dict[str, list[dict[str, Any]]] = {"ours_best": [], "hf_trainer_best": []}
    for _ in range(max(1, args.repeats)):
        rounds["ours_best"].append(in_subprocess(_our_loop, model_cfg, data_cfg, train_cfg, args.seed, args.threads))
        rounds["hf_trainer_best"].append(in_subprocess(_hf_trainer, model_cfg, data_cfg, train_cfg, args.seed, True,
                                                       args.threads))
    ours_best, hf_best = median_round(rounds["ours_best"]), median_round(rounds["hf_trainer_best"])
    ours = ours_best
    if args.precision != "auto":  # ours as asked (e.g. fp32 on a bf16 machine) vs ours at its best (auto)
        ours = in_subprocess(_our_loop, model_cfg, data_cfg, {**train_cfg, "precision": args.precision}, args.seed,
                             args.threads)
    hf = in_subprocess(_hf_trainer, model_cfg, data_cfg, train_cfg, args.seed, False, args.threads)
    metric = next(iter(ours["metrics"]))

    def points(a: dict[str, Any], b: dict[str, Any]) -> float:
        return 100 * (a["metrics"][metric] - b["metrics"][metric])

    return {
        "benchmark": "train", "config": {"model": model_cfg, "data": data_cfg, "train": train_cfg, "seed": args.seed},
        "cpu_capability": _capability(), "ours": ours, "ours_best": ours_best, "hf_trainer": hf, "hf_trainer_best": hf_best,
        "metric": metric, "rounds_of_the_best_pair": len(rounds["ours_best"]),
        "speedup_vs_trainer_defaults": ours["examples_per_second"] / hf["examples_per_second"],
        "speedup_vs_trainer_best": ours_best["examples_per_second"] / hf_best["examples_per_second"],
        "metric_difference_points": points(ours, hf), "metric_difference_points_best": points(ours_best, hf_best),
    }


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median examples/s (the lower middle of an even count), with every round's figure."""
    chosen = sorted(rounds, key=lambda r: r["examples_per_second"])[(len(rounds) - 1) // 2]
    return {**chosen, "examples_per_second_rounds": [r["examples_per_second"] for r in rounds]}


def _capability() -> str:
    from analysis.core.precision import cpu_capability

    return cpu_capability()


# ----------------------------------------------------------------------------------------------
# bench precision: what each precision costs on this machine, and what `auto` picks


def _finetune_speed(precision: str, train_size: int, seed: int, threads: int | None) -> dict[str, Any]:
    """Examples/s of a short real fine-tune of the default model on SST-2 in `precision` (own process): a cold
    pass (kernels built for each new batch shape: oneDNN's bf16 kernels are JIT-compiled) and a warm one over the
    same batches, which is what the steps of a longer run cost."""
    data_cfg = DataConfig(dataset="sst2", train_size=train_size, eval_size=64).to_dict()
    train_cfg = TrainConfig(epochs=1.0, precision=precision, eval_every_epoch=False).to_dict()
    cold = _our_loop(ModelConfig().to_dict(), data_cfg, train_cfg, seed, threads)
    warm = _our_loop(ModelConfig().to_dict(), data_cfg, train_cfg, seed, threads)
    return {k: warm[k] for k in ("examples_per_second", "tokens_per_second", "train_seconds", "mfu",
                                 "matmul_peak_gflops", "threads")} | {
        "train_examples": train_size, "cold_examples_per_second": cold["examples_per_second"]}


def _matmul_table(threads: int | None) -> dict[str, Any]:
    import torch

    from analysis.core.precision import matmul_gflops, set_threads

    set_threads(threads=threads)
    out = {"threads": torch.get_num_threads()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        out[f"{name}_gflops"] = matmul_gflops(dtype, size=1024, seconds=0.3)
        if name != "fp32":
            out[f"{name}_autocast_gflops"] = matmul_gflops(dtype, size=1024, seconds=0.3, autocast=True)
    return out


@BENCHES.register("precision")
def bench_precision(args: argparse.Namespace) -> dict[str, Any]:
    """CPU capability, matmul GFLOP/s per precision, a short real fine-tune per precision, what `auto` picks.

    A precision whose matmuls run under a fifth of fp32's speed (emulated) fine-tunes on 64 examples instead of
    `--train-size`, so the benchmark stays minutes long on every machine; each figure is still measured.
    `default_vs_best` compares the warm passes (a run's steady state); the cold ones are reported beside them."""
    from analysis.core.precision import cpu_bf16_native, cpu_capability, cpu_probe, resolve, usable_cores

    matmul = in_subprocess(_matmul_table, args.threads)
    auto = resolve("auto", "cpu")
    train_size = min(args.train_size, 1000)
    runs = {}
    for precision in ("fp32", "bf16", "fp16"):
        slow = matmul[f"{precision}_autocast_gflops" if precision != "fp32" else "fp32_gflops"] < 0.2 * matmul["fp32_gflops"]
        size = 64 if slow else train_size
        runs[precision] = in_subprocess(_finetune_speed, precision, size, args.seed, args.threads)
        runs[precision]["emulated"] = slow
    best = max(runs, key=lambda k: runs[k]["examples_per_second"])
    return {"benchmark": "precision", "cpu_capability": cpu_capability(), "cpu_bf16_native": cpu_bf16_native(),
            "probe": cpu_probe(), "usable_cores": usable_cores(), "matmul": matmul, "finetune": runs,
            "auto": auto, "best": best,
            "default_vs_best": runs[auto]["examples_per_second"] / runs[best]["examples_per_second"],
            "note": "fine-tune: the embedded default model on SST-2, batch 32, lr 1e-4, one epoch; matmul: 1024 x 1024"}


def _lstm_loop(model_cfg: dict, data_cfg: dict, train_cfg: dict, seed: int, threads: int,
               repeats: int) -> dict[str, Any]:
    """One cold training from a fresh process (oneDNN builds its kernels for each sequence length, the
    allocator grows), then `repeats` more in the same process, as the study trains its points: the median of
    those is the figure, the cold one is reported beside it."""
    import torch

    cold = _our_loop(model_cfg, data_cfg, train_cfg, seed, threads)
    warm = [_our_loop(model_cfg, data_cfg, train_cfg, seed, threads) for _ in range(max(1, repeats))]
    median = sorted(warm, key=lambda r: r["examples_per_second"])[len(warm) // 2]
    return {**median, "threads": torch.get_num_threads(), "repeats": len(warm),
            "cold_examples_per_second": cold["examples_per_second"],
            "warm_examples_per_second": [r["examples_per_second"] for r in warm]}


@BENCHES.register("lstm")
def bench_lstm(args: argparse.Namespace) -> dict[str, Any]:
    """The data-scale study's LSTM arm at its default size (LSTM-1-256, bidirectional), as the study trains it."""
    from analysis.studies.data_scale import ScaleConfig, lstm_arm

    study = ScaleConfig()
    model_cfg = lstm_arm(study).to_dict()
    data_cfg = DataConfig(dataset=args.dataset, train_size=args.train_size).to_dict()
    train_cfg = study.run_config("lstm", args.train_size, args.train_size + 1, args.seed).train.replace(
        epochs=args.epochs, holdout_fraction=0.0, patience=0).to_dict()
    result = in_subprocess(_lstm_loop, model_cfg, data_cfg, train_cfg, args.seed, args.threads, args.repeats)
    return {"benchmark": "lstm", "config": {"model": model_cfg, "data": data_cfg, "train": train_cfg}, **result}


def _child_tuning_worker(model_cfg: dict, data_cfg: dict, train_cfg: dict, seed: int,
                         threads: int | None = None) -> dict[str, Any]:
    import torch

    from analysis.core.precision import resolve, set_threads
    from analysis.methods.finetuning.child_tuning import ChildDOptions, fisher_scores
    from analysis.runs.finetune import load_inputs
    from analysis.training.loop import fit

    set_threads(threads=threads)
    inputs = load_inputs(ModelConfig.from_dict(model_cfg), DataConfig.from_dict(data_cfg), seed)
    cfg = TrainConfig.from_dict(train_cfg)
    cfg = cfg.replace(precision=resolve(cfg.precision, "cpu"))
    _, cost = fisher_scores(inputs.model, inputs, ChildDOptions(), seed, torch.device("cpu"), cfg.precision)
    result = fit(inputs.model, inputs.train, inputs.eval, inputs.task, cfg.replace(epochs=1.0), seed,
                 torch.device("cpu"))
    return {"fisher_seconds": cost["fisher_seconds"], "fisher_examples": cost["fisher_examples"],
            "epoch_seconds": result.train_seconds, "ratio": cost["fisher_seconds"] / result.train_seconds,
            "precision": cfg.precision, "threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb()}


@BENCHES.register("child-tuning")
def bench_child_tuning(args: argparse.Namespace) -> dict[str, Any]:
    """Fisher estimation (Child-Tuning D) over the training examples vs one training epoch over the same."""
    model_cfg = ModelConfig(model=args.model).to_dict()
    data_cfg = DataConfig(dataset=args.dataset, train_size=args.train_size).to_dict()
    train_cfg = TrainConfig(batch_size=16, lr=4e-5).to_dict()  # the official run defaults: batch 16, lr 4e-5
    out = in_subprocess(_child_tuning_worker, model_cfg, data_cfg, train_cfg, args.seed, args.threads)
    return {"benchmark": "child-tuning", "config": {"model": model_cfg, "data": data_cfg, "train": train_cfg}, **out}


# ----------------------------------------------------------------------------------------------
# bench prune: measured CPU latency of dense, structured (compacted) and unstructured (sparse path) models


def _prune_variants(model_name: str) -> dict[str, Callable[[], Any]]:
    import copy

    import torch

    from analysis.methods.pruning.masks import apply_masks_, magnitude_scores, select
    from analysis.methods.pruning.unstructured import prunable_params
    from analysis.models.arch import Arch
    from analysis.models.compact import remove_ffn_neurons_
    from analysis.models.heads import remove_heads_
    from analysis.models.loading import load_encoder_classifier
    from analysis.models.sparse_exec import to_sparse_execution_

    torch.manual_seed(0)
    dense = load_encoder_classifier(model_name, 2)
    arch = Arch(dense)
    half_heads = {i: list(range(arch.num_heads // 2)) for i in range(arch.num_layers)}
    ffn = arch.linear(0, "ffn_in").out_features
    half_ffn = {i: torch.arange(ffn // 2) for i in range(arch.num_layers)}

    def heads50():
        m = copy.deepcopy(dense)
        remove_heads_(m, half_heads)
        return m

    def ffn50():
        m = copy.deepcopy(dense)
        remove_ffn_neurons_(m, half_ffn)
        return m

    def structured50():
        m = heads50()
        remove_ffn_neurons_(m, half_ffn)
        return m

    def unstructured90(kernel: str | None):
        m = copy.deepcopy(dense)
        params = prunable_params(m)
        apply_masks_(params, select(magnitude_scores(params), 0.9, "per-tensor"))
        if kernel:
            to_sparse_execution_(m, kernel=kernel)
        return m

    return {"dense": lambda: dense, "heads50": heads50, "ffn50": ffn50, "heads50+ffn50": structured50,
            "unstructured90_dense_kernel": lambda: unstructured90(None),
            "unstructured90_sparse_numba": lambda: unstructured90("numba"),
            "unstructured90_sparse_mkl": lambda: unstructured90("mkl")}


def _bench_prune_worker(model_name: str, dataset: str, batch_size: int, repeats: int,
                        threads: int | None) -> dict[str, Any]:
    import torch

    from analysis.core.config import DataConfig
    from analysis.core.precision import cpu_bf16_fast, set_threads
    from analysis.data.tasks import load_task
    from analysis.data.tokens import accepts_token_types, encode, iterate
    from analysis.models.loading import load_tokenizer
    from analysis.models.sparsity import count_params, encoder_linear_params

    set_threads(threads=threads)
    data = load_task(DataConfig(dataset=dataset), seed=0, need_train=False)
    tokenizer = load_tokenizer(model_name)
    enc = encode(data.eval, tokenizer, 128)
    variants = _prune_variants(model_name)
    dense = variants["dense"]()
    batches = [b for _, b in iterate(enc, batch_size, tokenizer.pad_token_id or 0, accepts_token_types(dense))]
    dense_params, dense_encoder = count_params(dense), encoder_linear_params(dense)
    results = {}
    for name, build in variants.items():
        model = build()
        seconds = time_passes(model, batches, repeats)
        nonzero = int(sum((p != 0).sum() for p in model.parameters()))
        if "_sparse_" in name:
            nonzero = int(sum(m.weight_csr.values().numel() for m in model.modules() if hasattr(m, "weight_csr")))
            nonzero += int(sum((p != 0).sum() for p in model.parameters()))
        results[name] = {"seconds_per_pass": seconds, "latency_ms_per_batch": 1000 * seconds / len(batches),
                         "examples_per_second": len(enc) / seconds, "params": count_params(model),
                         "nonzero_params": nonzero}
    for r in results.values():
        r["speedup_vs_dense"] = results["dense"]["seconds_per_pass"] / r["seconds_per_pass"]
    if cpu_bf16_fast():
        bf16 = time_passes(dense, batches, repeats, "bf16")
        reference = {"seconds_per_pass": bf16, "speedup_vs_dense_fp32": results["dense"]["seconds_per_pass"] / bf16}
    else:  # emulated here (tens of times slower): the probe's matmul speeds say so without minutes of timing
        reference = {"skipped": "bf16 is not fast on this CPU (see `bench precision`)"}
    return {"variants": results, "dense_bf16_reference": reference,
            "examples": len(enc), "batches": len(batches), "batch_size": batch_size, "precision": "fp32",
            "threads": torch.get_num_threads(), "dense_params": dense_params, "dense_encoder_params": dense_encoder,
            "peak_rss_mb": peak_rss_mb()}


@BENCHES.register("prune")
def bench_prune(args: argparse.Namespace) -> dict[str, Any]:
    out = in_subprocess(_bench_prune_worker, args.model, args.dataset, args.batch_size, args.repeats, args.threads)
    return {"benchmark": "prune", "model": args.model, "dataset": args.dataset, **out}
