"""bench heads: seconds for Michel head importance on a full dev set, and IG on the gates on a subset."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from analysis.bench.core import BENCHES, in_subprocess, peak_rss_mb
from analysis.runs.heads import HeadsConfig, load_explained
from analysis.store.index import RunStore


def _bench_heads_worker(model_name: str, dataset: str, batch_size: int, threads: int, seed: int,
                        ig_examples: int, ig_steps: int) -> dict[str, Any]:
    import torch

    from analysis.core.config import DataConfig
    from analysis.core.precision import set_threads
    from analysis.data.tasks import load_task
    from analysis.data.tokens import encode
    from analysis.models.heads import gate_integrated_gradients, head_importance
    from analysis.runs.heads import IG_ROWS, example_losses, labelled_batches

    set_threads(threads=threads)
    start = time.perf_counter()
    task = load_task(DataConfig(dataset=dataset), seed, need_train=False)
    explained = load_explained(RunStore(), model_name, task.card.num_labels, seed)
    model, tokenizer = explained.model, explained.tokenizer
    enc = encode(task.eval, tokenizer, 128)
    losses = example_losses(task.card.num_labels, HeadsConfig().precision)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    head_importance(model, labelled_batches(model, enc, batch_size, tokenizer), lambda m, b: losses(m, b).mean())
    michel = time.perf_counter() - start
    from analysis.data.tasks import subsample

    small = encode(subsample(task.eval, min(ig_examples, len(task.eval)), seed, "ig_examples"), tokenizer, 128)
    start = time.perf_counter()
    ig = gate_integrated_gradients(model, labelled_batches(model, small, batch_size, tokenizer), losses, ig_steps,
                                   internal_batch_size=max(IG_ROWS, batch_size))
    ig_seconds = time.perf_counter() - start
    return {"examples": len(enc), "load_seconds": load_seconds, "michel_seconds": michel,
            "michel_examples_per_second": len(enc) / michel, "ig_examples": len(small), "ig_steps": ig_steps,
            "ig_seconds": ig_seconds, "ig_seconds_per_example": ig_seconds / len(small),
            "ig_relative_delta": ig.relative_delta, "threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb()}


@BENCHES.register("heads")
def bench_heads(args: argparse.Namespace) -> dict[str, Any]:
    """Michel head importance on the full dev set (and IG on the gates on a subset), in a fresh process."""
    load_before = os.getloadavg()
    config = HeadsConfig()  # the `heads` command's defaults (batch size, IG steps), not the training benches'
    out = in_subprocess(_bench_heads_worker, args.model, args.dataset, config.batch_size, args.threads, args.seed,
                        config.ig_examples or 872, config.ig_steps)
    return {"benchmark": "heads", "model": args.model, "dataset": args.dataset, "batch_size": config.batch_size,
            **out, "target_seconds": 60.0, "michel_under_target": out["michel_seconds"] < 60.0,
            "cpu_count": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "note": "load averages above the core count mean other processes shared the CPU during the timing"}
