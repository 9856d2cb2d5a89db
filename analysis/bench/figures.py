"""bench export: seconds to export a paper figure (first PDF with the browser start, then warm ones)."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from analysis.bench.core import BENCHES, in_subprocess
from analysis.figures.export import ExportOptions


def _bench_figure() -> Any:
    """A figure of realistic size: 4 methods x 5 sparsities x 3 seeds with bands (timing input only)."""
    from analysis.figures import metric_vs_sparsity

    rows = [{"method": m, "encoder_sparsity": s, "value": 0.9 - 0.3 * s ** 3 - 0.02 * i + 0.005 * seed,
             "metric": "accuracy", "seed": seed}
            for i, m in enumerate(("sparsebert", "gradual-magnitude", "random", "small-dense"))
            for s in (0.5, 0.6, 0.7, 0.8, 0.9) for seed in range(3)]
    return metric_vs_sparsity(rows, dense=0.91)


def _bench_export_worker(repeats: int) -> dict[str, Any]:
    from analysis.figures.export import prepare_figure, render_formats
    from analysis.figures.render import browser_path, browser_version, renderer

    fig = _bench_figure()
    timings: dict[str, list[float]] = {}
    for label, options in (("pdf", ExportOptions(formats=("pdf",))), ("svg", ExportOptions(formats=("svg",))),
                           ("png_300dpi", ExportOptions(formats=("png",))),
                           ("pdf_greyscale_double", ExportOptions(width="double", formats=("pdf",), greyscale=True))):
        for _ in range(repeats + (1 if label == "pdf" else 0)):
            start = time.perf_counter()
            render_formats(prepare_figure(fig, options), options)
            timings.setdefault(label, []).append(time.perf_counter() - start)
    first = timings["pdf"].pop(0)
    renderer().close()
    out = {"first_pdf_seconds": round(first, 3), "repeats": repeats, "browser": browser_version(browser_path())}
    for label, values in timings.items():
        out[f"{label}_median_seconds"] = round(statistics.median(values), 3)
        out[f"{label}_max_seconds"] = round(max(values), 3)
    return out


@BENCHES.register("export")
def bench_export(args: argparse.Namespace) -> dict[str, Any]:
    """First PDF export (browser start included) and the next ones on the kept-alive renderer (median)."""
    repeats = max(5, args.repeats)
    result = in_subprocess(_bench_export_worker, repeats)
    return {"benchmark": "export", **result, "target_warm_pdf_seconds": 2.0,
            "warm_pdf_under_target": result["pdf_median_seconds"] < 2.0}
