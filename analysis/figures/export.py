"""Figures to PNG/SVG/PDF at paper sizes, tables to CSV/LaTeX (booktabs), each with a provenance JSON beside it,
and a whole study as one zip.

A figure export `NAME` is `NAME.pdf`, `NAME.svg`, `NAME.png` (the formats asked for) and `NAME.provenance.json`
(what made it: runs, their configs and seeds, library versions, the figure function and its arguments, the
time, the code version, and a sha256 per file). A table export is `NAME.csv`, `NAME.tex` and its provenance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import numbers
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go

from analysis import CODE_VERSION
from analysis.core.errors import ConfigError, PruneScopeError
from analysis.core.paths import child
from analysis.core.provenance import versions
from analysis.figures.registry import FIGURES, NotApplicable, build_figure, expand_runs, figures_for
from analysis.figures.render import FORMATS, RenderError, browser_path, browser_version, renderer
from analysis.figures.style import PX_PER_INCH, paper_figure, to_greyscale
from analysis.store.index import RunStore

WIDTHS_IN = {"single": 3.3, "double": 6.9}
ASPECT = {"single": 0.75, "double": 0.45}  # height / width when no height is given
EXPORT_LIBRARIES = ("plotly", "kaleido", "choreographer", "pandas")


@dataclass(frozen=True)
class ExportOptions:
    """How to export a figure: column width (or inches; None: the figure's own default), height in inches,
    formats, PNG DPI, greyscale."""

    width: str | float | None = None
    height: float | None = None
    formats: tuple[str, ...] = FORMATS
    dpi: int = 300
    greyscale: bool = False
    keep_title: bool = False

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"unknown figure format(s) {bad or '(none)'}", fix=f"use some of: {', '.join(FORMATS)}")
        if isinstance(self.width, str) and self.width not in WIDTHS_IN:
            raise ConfigError(f"unknown width {self.width!r}", fix="use single (3.3 in), double (6.9 in) or inches")
        w, h = self.size()
        if not (0.5 <= w <= 20 and 0.5 <= h <= 20):
            raise ConfigError(f"figure size {w:g} x {h:g} in is out of range", fix="use 0.5 to 20 inches")
        if not 50 <= self.dpi <= 1200:
            raise ConfigError(f"dpi {self.dpi} is out of range", fix="use 50 to 1200 (300 is print quality)")

    def resolved(self, preferred: str) -> "ExportOptions":
        """These options with the width filled in by a figure's preferred width when none was chosen."""
        return self if self.width is not None else replace(self, width=preferred)

    def size(self) -> tuple[float, float]:
        """(width, height) in inches (single column when no width was chosen)."""
        named = self.width if self.width is not None else "single"
        width = WIDTHS_IN[named] if isinstance(named, str) else float(named)
        aspect = ASPECT.get(named, 0.75) if isinstance(named, str) else 0.75
        return width, float(self.height) if self.height else round(width * aspect, 1)

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON, with the size in inches (None while the width is left to each figure)."""
        w, h = self.size() if self.width is not None else (None, self.height)
        return {**asdict(self), "formats": list(self.formats), "width_in": w, "height_in": h}


# ----------------------------------------------------------------------------------------------
# provenance


def export_versions() -> dict[str, str]:
    """The run-time library versions plus those of the export stack and the browser."""
    out = dict(versions())
    for name in EXPORT_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        out["browser"] = browser_version(browser_path())
    except Exception as exc:  # provenance must not fail because the browser is missing; the render will say so
        out["browser"] = f"unavailable ({type(exc).__name__})"
    return out


def run_provenance(store: RunStore, run_id: str) -> dict[str, Any]:
    """One run as provenance: identity, seed, full config, its metrics and the versions it ran with."""
    record = store.record(run_id)
    row = store.require(run_id)
    return {"run_id": run_id, "kind": record.get("kind", row.kind), "status": record.get("status", row.status),
            "method": row.row.get("method"), "dataset": row.row.get("dataset"), "seed": row.row.get("seed"),
            "config": record.get("config", row.config), "metrics": record.get("metrics", row.metrics),
            "versions": record.get("versions", {}), "machine": record.get("machine", {})}


def make_provenance(store: RunStore | None, run_ids: Sequence[str], function: str,
                    arguments: dict[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:
    """What went into a figure or table: its runs (configs, seeds, versions) and the function that made it."""
    runs = [run_provenance(store, r) for r in run_ids] if store is not None else [{"run_id": r} for r in run_ids]
    return {"name": name, "function": function, "arguments": _jsonable(arguments or {}), "run_ids": list(run_ids),
            "seeds": sorted({r["seed"] for r in runs if r.get("seed") is not None}), "runs": runs}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _finish(provenance: dict[str, Any], kind: str, files: dict[str, bytes], options: dict[str, Any] | None) -> bytes:
    out = {**provenance, "kind": kind, "options": options,
           "files": {n: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()},
           "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "code_version": CODE_VERSION, "exporter_versions": export_versions()}
    return json.dumps(out, indent=2, default=str).encode()


# ----------------------------------------------------------------------------------------------
# figures


def prepare_figure(fig: go.Figure, options: ExportOptions) -> go.Figure:
    """The figure as it will print: paper size and fonts, Okabe-Ito colourway, greyscale if asked."""
    w, h = options.size()
    out = paper_figure(fig, w, h, keep_title=options.keep_title)
    return to_greyscale(out) if options.greyscale else out


def png_with_dpi(png: bytes, dpi: float) -> bytes:
    """The PNG with a pHYs chunk saying its DPI (so word processors and LaTeX size it right)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    ppm = round(dpi / 0.0254)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    rest = _drop_chunk(png[ihdr_end:], b"pHYs")
    return png[:ihdr_end] + chunk + rest


def _drop_chunk(data: bytes, kind: bytes) -> bytes:
    out, i = b"", 0
    while i < len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        end = i + 12 + length
        if data[i + 4:i + 8] != kind:
            out += data[i:end]
        i = end
    return out


def render_formats(fig: go.Figure, options: ExportOptions) -> dict[str, bytes]:
    """{format: bytes} of the prepared figure (PNG at the asked DPI, SVG and PDF as vectors with real text)."""
    w, h = options.size()
    width_px, height_px = w * PX_PER_INCH, h * PX_PER_INCH
    out = {}
    for fmt in options.formats:
        scale = options.dpi / PX_PER_INCH if fmt == "png" else 1.0
        data = renderer().render(fig, fmt, width_px, height_px, scale)
        out[fmt] = png_with_dpi(data, options.dpi) if fmt == "png" else data
    return out


def figure_files(fig: go.Figure, name: str, options: ExportOptions, provenance: dict[str, Any]) -> dict[str, bytes]:
    """{file name: bytes}: the figure in each format asked plus NAME.provenance.json."""
    options = options.resolved("single")
    prepared = prepare_figure(fig, options)
    files = {f"{name}.{fmt}": data for fmt, data in render_formats(prepared, options).items()}
    files[f"{name}.provenance.json"] = _finish(provenance, "figure", files, options.to_dict())
    return files


# ----------------------------------------------------------------------------------------------
# tables


def format_number(value: Any) -> str:
    """A cell for print: integers with thousands separators, floats to 3 decimals (or 3 significant digits)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    value = float(value)
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 0.001:
        return f"{value:.3f}"
    return f"{value:.2e}"


def table_to_csv(df: pd.DataFrame) -> str:
    """The table as CSV with full precision (for re-analysis)."""
    return df.to_csv(index=False)


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Text with LaTeX's special characters escaped."""
    return "".join(LATEX_SPECIAL.get(c, c) for c in text)


def table_to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """The table as a LaTeX booktabs tabular (a table float when a caption is given), special characters escaped."""
    df = df.reset_index(drop=True)
    df.columns = [str(c) for c in df.columns]
    columns = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) else "l"
                      for c in df.columns)
    styler = df.style.format(format_number, escape="latex", na_rep="--").format_index(escape="latex", axis=1)
    styler = styler.hide(axis="index")
    extra = {"caption": latex_escape(caption), "label": label, "position_float": "centering"} if caption else {}
    return styler.to_latex(column_format=columns, hrules=True, **extra)


def table_files(df: pd.DataFrame, name: str, provenance: dict[str, Any], caption: str | None = None) -> dict[str, bytes]:
    """{file name: bytes}: NAME.csv, NAME.tex and NAME.provenance.json."""
    files = {f"{name}.csv": table_to_csv(df).encode(), f"{name}.tex": table_to_latex(df, caption).encode()}
    files[f"{name}.provenance.json"] = _finish(provenance, "table", files, {"rows": len(df), "columns": list(map(str, df.columns))})
    return files


def write_files(files: dict[str, bytes], folder: str | Path) -> list[Path]:
    """Write {name: bytes} into a folder (created); the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, data in files.items():
        path = child(folder, file_name, "export file name")  # nothing is written outside the folder
        path.write_bytes(data)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------
# named figures from the store, one or all of a study


def named_figure_files(store: RunStore, name: str, run_ids: Sequence[str], options: ExportOptions) -> dict[str, bytes]:
    """A registered figure built from the store: its image files, its table (CSV, LaTeX) and their provenance."""
    result = build_figure(store, name, run_ids)
    options = options.resolved(FIGURES.get(name).width)
    provenance = make_provenance(store, result.run_ids, result.function, result.arguments, name)
    files = figure_files(result.figure, name, options, provenance)
    if result.table is not None and len(result.table):
        files.update(table_files(result.table, f"{name}-table", {**provenance, "name": f"{name}-table"}))
    return files


def bundle_zip(store: RunStore, run_ids: Sequence[str], options: ExportOptions,
               names: Sequence[str] | None = None) -> tuple[bytes, dict[str, Any]]:
    """Every applicable registered figure (or those named) of these runs/studies as one zip, and its manifest."""
    expanded = expand_runs(store, run_ids)
    kinds = {store.require(r).kind for r in expanded}
    candidates = list(names) if names else figures_for(sorted(kinds))
    manifest: dict[str, Any] = {"run_ids": list(run_ids), "options": options.to_dict(), "figures": {}, "skipped": {},
                                "failed": {}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in candidates:
            FIGURES.get(name)
            try:
                files = named_figure_files(store, name, expanded, options)
            except RenderError:
                raise  # no browser: no figure can be made, say so once
            except PruneScopeError as exc:  # NotApplicable, a missing artefact: this figure does not apply
                manifest["skipped"][name] = exc.message
                continue
            except Exception as exc:  # a bug in one figure must not lose the others; the manifest names it
                manifest["failed"][name] = f"{type(exc).__name__}: {exc}"
                continue
            manifest["figures"][name] = sorted(files)
            for file_name, data in files.items():
                zf.writestr(f"{name}/{file_name}", data)
        manifest["exported_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    if not manifest["figures"]:
        raise NotApplicable(f"no figure applies to runs {', '.join(run_ids)}: "
                            + "; ".join(f"{k}: {v}" for k, v in {**manifest["skipped"], **manifest["failed"]}.items()),
                            fix="pick a finished study or its runs (`python -m analysis runs`)")
    return buffer.getvalue(), manifest


def export_bundle(store: RunStore, run_ids: Sequence[str], to: str | Path, options: ExportOptions | None = None,
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """Export all figures of a study (figures in each format, tables, provenance) as one zip file at `to`."""
    data, manifest = bundle_zip(store, run_ids, options or ExportOptions(), names)
    path = Path(to)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {**manifest, "zip": str(path), "bytes": len(data)}
