"""Knowledge-loss probe figures: the probe table and bars per run, CKA per layer (vs the pre-trained model
and vs the dense teacher), the layer probe per layer, compared across runs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.base import layout, series_colour, series_dash, side_legend
from analysis.figures.registry import FigureResult, NotApplicable, register_figure

TRANSFER_TASKS = ("mr", "cr", "subj", "mpqa")
# (probe, key, column label): the scalars of the probe table, in reading order
SCALARS = (
    ("fidelity", "agreement", "teacher agreement"), ("fidelity", "kl_teacher_to_model", "KL(teacher‖model)"),
    ("fidelity", "mse_to_teacher", "MSE to teacher"),
    *(("transfer", t, f"transfer {t.upper()}") for t in TRANSFER_TASKS),
    ("transfer", "mean_accuracy", "transfer mean"), ("transfer", "sts_b_spearman", "STS-B Spearman (zero-shot)"),
    ("mlm", "masked_token_accuracy", "masked-token accuracy"), ("mlm", "pseudo_perplexity", "pseudo-perplexity"),
)
BAR_KEYS = ("teacher agreement", *(f"transfer {t.upper()}" for t in TRANSFER_TASKS), "transfer mean",
            "STS-B Spearman (zero-shot)", "masked-token accuracy")
BAR_LABELS = {"STS-B Spearman (zero-shot)": "STS-B ρ<br>(zero-shot)"}  # tick labels: two short lines each


def run_colour(i: int) -> str:
    """The i-th probed model's colour."""
    return series_colour(i)


def probe_table(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per probed model: every scalar probe result; CKA and layer probes summarised by their last layer."""
    rows = []
    for label, probes in results.items():
        row: dict[str, Any] = {"model": label}
        for probe, key, column in SCALARS:
            value = probes.get(probe, {})
            if value.get("applicable") and key in value:
                row[column] = value[key]
        for which in ("pretrained", "teacher"):
            per_layer = probes.get("cka", {}).get(which) if probes.get("cka", {}).get("applicable") else None
            if per_layer:
                row[f"CKA vs {which} (last layer)"] = per_layer[-1]
        layer = probes.get("layer-probe", {})
        if layer.get("applicable") and layer.get("accuracy_per_layer"):
            row["layer probe (best layer)"] = max(layer["accuracy_per_layer"])
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all") if len(table) else table


def not_applicable(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Which probe did not apply to which model, and why."""
    rows = [{"model": label, "probe": name, "reason": value.get("reason", "")}
            for label, probes in results.items() for name, value in probes.items()
            if isinstance(value, Mapping) and value.get("applicable") is False]
    return pd.DataFrame(rows, columns=["model", "probe", "reason"])


def probe_bars(results: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Grouped bars: each probe measure on the x axis, one bar per probed model (all on a 0-1 scale)."""
    table = probe_table(results)
    keys = [k for k in BAR_KEYS if k in table.columns]
    fig = go.Figure()
    for i, (_, row) in enumerate(table.iterrows()):
        fig.add_trace(go.Bar(x=[bar_label(k) for k in keys], y=[row.get(k) for k in keys], name=str(row["model"]),
                             marker_color=run_colour(i), hovertemplate="%{y:.3f}<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    return side_legend(layout(fig, "Knowledge-loss probes per model (higher keeps more)", "", "score"))


def bar_label(key: str) -> str:
    """A probe measure as a bar's tick label: 'transfer MR' as 'transfer<br>MR'."""
    return BAR_LABELS.get(key) or key.replace(" ", "<br>", 1)


def cka_lines(results: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Linear CKA per layer against the pre-trained model and against the dense teacher, one panel each; a
    reference no model was compared with gets no (empty) panel, and the subtitle says why."""
    titles = {"pretrained": "vs the pre-trained model", "teacher": "vs the dense fine-tuned teacher"}
    applied = {label: p["cka"] for label, p in results.items() if p.get("cka", {}).get("applicable")}
    refs = [w for w in titles if any(c.get(w) for c in applied.values())] or ["pretrained"]
    fig = make_subplots(rows=1, cols=len(refs), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[titles[w] for w in refs])
    for i, (label, probes) in enumerate(results.items()):
        cka = applied.get(label, {})
        shown = False
        for col, which in enumerate(refs, 1):
            values = cka.get(which)
            if values:
                fig.add_trace(go.Scatter(x=list(range(len(values))), y=values, mode="lines+markers", name=label,
                                         legendgroup=label, showlegend=not shown,
                                         line=dict(color=run_colour(i), dash=series_dash(i), width=2)), row=1, col=col)
                shown = True
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1)
    note = ("" if "teacher" in refs else "<br><sup>no CKA against a dense teacher: none of these models has one "
            "(only pruned runs do)</sup>")
    return side_legend(layout(fig, "Linear CKA per layer on 512 WikiText-2 sentences" + note, "", "linear CKA"))


def layer_probe_lines(results: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """The task label's linear-probe accuracy at every layer, one line per model."""
    fig = go.Figure()
    for i, (label, probes) in enumerate(results.items()):
        layer = probes.get("layer-probe", {})
        values = layer.get("accuracy_per_layer") if layer.get("applicable") else None
        if values:
            fig.add_trace(go.Scatter(x=list(range(len(values))), y=values, mode="lines+markers", name=label,
                                     line=dict(color=run_colour(i), dash=series_dash(i), width=2)))
    fig.update_xaxes(dtick=1)
    return side_legend(layout(fig, "Linear probe of the task label at every layer<br><sup>dev accuracy</sup>",
                              "layer (0 = embeddings)", "accuracy"))


def probe_label(store: Any, probe_row: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A readable name of a probe run's target: 'pre-trained', or the target run's method, sparsity and id.

    `index` ({run id: `RunStore.list` row}) saves one store query per label on a page listing many runs."""
    target = (probe_row.get("summary") or {}).get("target") or probe_row.get("model")
    if target == "default":
        return "pre-trained (default)"
    row = index.get(target) if index is not None else _row(store, target)
    if row is None:
        return str(target)
    s = row.get("summary") or {}
    parts = [row.get("method") or row.get("kind"), row.get("dataset") and str(row["dataset"]).split("/")[-1]]
    if s.get("requested_sparsity") is not None:
        parts.append(f"s={s['requested_sparsity']:g}")
    if row.get("kind") == "finetune" and row.get("method") == "vanilla":
        parts[0] = "dense"
    return " ".join(p for p in parts if p) + f" ({str(target)[:8]})"


def _row(store: Any, run_id: str | None) -> dict[str, Any] | None:
    rec = store.get(run_id) if run_id else None
    return None if rec is None else {**rec.row, "summary": rec.summary}


def probe_results(store: Any, run_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({readable label: probes artefact}, probe run ids used) for the finished probe runs among `run_ids`."""
    out: dict[str, dict[str, Any]] = {}
    used = []
    for run_id in run_ids:
        rec = store.require(run_id)
        if rec.kind != "probe" or rec.status != "done" or "probes.json" not in store.artefacts(run_id):
            continue
        label = probe_label(store, {"summary": rec.summary, "model": rec.row.get("model")})
        out[label if label not in out else f"{label} [{run_id}]"] = store.load_artifact_json(run_id, "probes")
        used.append(run_id)
    return out, used


def _results(store: Any, run_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    results, used = probe_results(store, run_ids)
    if not results:
        raise NotApplicable("none of these runs is a finished probe run",
                            fix="probe a model with `python -m analysis probe RUN_ID` (or `probe default`)")
    return results, used


@register_figure("probe-bars", kinds=("probe",),
                 description="Knowledge-loss probes per model, side by side", width="double")
def _probe_bars(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Grouped bars of the probe scores (teacher agreement, transfer, STS-B, MLM) per probed model."""
    results, used = _results(store, run_ids)
    return FigureResult(probe_bars(results), probe_table(results), used, "probe_bars", {"models": list(results)})


@register_figure("probe-cka", kinds=("probe",),
                 description="Linear CKA per layer vs pre-trained and vs teacher", width="double")
def _probe_cka(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """CKA per layer against the pre-trained model and the dense teacher, one line per probed model."""
    results, used = _results(store, run_ids)
    rows = [{"model": label, "reference": which, "layer": i, "cka": v} for label, probes in results.items()
            if probes.get("cka", {}).get("applicable") for which in ("pretrained", "teacher")
            for i, v in enumerate(probes["cka"].get(which) or [])]
    if not rows:
        raise NotApplicable("none of these probe runs ran the cka probe", fix="probe with `--probes cka`")
    return FigureResult(cka_lines(results), pd.DataFrame(rows), used, "cka_lines", {"models": list(results)})


@register_figure("probe-layers", kinds=("probe",), description="Linear probe of the task label at every layer")
def _probe_layers(store: Any, run_ids: Sequence[str]) -> FigureResult:
    """Task-label probe accuracy per layer, one line per probed model."""
    results, used = _results(store, run_ids)
    rows = [{"model": label, "layer": i, "accuracy": v} for label, probes in results.items()
            if probes.get("layer-probe", {}).get("applicable")
            for i, v in enumerate(probes["layer-probe"].get("accuracy_per_layer") or [])]
    if not rows:
        raise NotApplicable("no layer probe applied to these models (it covers single-sentence classification tasks)",
                            fix="probe fine-tuned or pruned runs of e.g. sst2 with `--probes layer-probe`")
    return FigureResult(layer_probe_lines(results), pd.DataFrame(rows), used, "layer_probe_lines",
                        {"models": list(results)})
