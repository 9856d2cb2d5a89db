"""Reusable widgets (UI only). `export_buttons` goes under any figure: paper size, formats, greyscale, then
download buttons for the figure (PDF/SVG/PNG), its table (CSV/LaTeX), their provenance and a zip of all.

    from dashboard.widgets import export_buttons
    st.plotly_chart(fig)
    export_buttons(fig, table, {"run_ids": ids, "function": "metric_vs_sparsity", "arguments": {...}}, "acc-vs-sparsity")
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis.figures.export import ExportOptions, figure_files, make_provenance, table_files
from analysis.figures.render import FORMATS
from dashboard.common import get_store, show_error

MIME = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png", "json": "application/json",
        "csv": "text/csv", "tex": "application/x-tex", "zip": "application/zip"}


def options_form(key: str, default_width: str = "single") -> ExportOptions | None:
    """Width, height, formats, DPI, greyscale and title choices; None (with a message) when they are invalid."""
    c1, c2, c3 = st.columns(3)
    width = c1.radio("Width", ["single", "double"], index=["single", "double"].index(default_width), horizontal=True,
                     key=f"{key}-width", help="single column 3.3 in, double column 6.9 in")
    default_height = ExportOptions(width=width).size()[1]
    height = c1.number_input("Height (in)", 0.5, 20.0, float(default_height), 0.1, key=f"{key}-height-{width}")
    formats = c2.multiselect("Formats", list(FORMATS), default=["pdf", "svg", "png"], key=f"{key}-formats")
    dpi = c2.select_slider("PNG DPI", [150, 300, 600], value=300, key=f"{key}-dpi")
    greyscale = c3.toggle("Greyscale", key=f"{key}-grey", help="grey levels, with a dash style/marker per line")
    keep_title = c3.toggle("Keep title", key=f"{key}-title", help="papers usually put it in the caption")
    try:
        return ExportOptions(width=width, height=height, formats=tuple(formats), dpi=dpi, greyscale=greyscale,
                             keep_title=keep_title)
    except Exception as exc:
        show_error(exc)
        return None


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """Files as one in-memory zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def download_buttons(files: Mapping[str, bytes], name: str, key: str) -> None:
    """One download button per file, plus a zip of them all."""
    row = st.container(horizontal=True)  # buttons as wide as their file names, wrapping: no name is cut
    for file_name, data in files.items():
        ext = file_name.rsplit(".", 1)[-1]
        row.download_button(file_name, data, file_name=file_name, mime=MIME.get(ext), key=f"{key}-dl-{file_name}",
                            on_click="ignore")
    st.download_button(f"All as {name}.zip", zip_bytes(files), file_name=f"{name}.zip", mime=MIME["zip"],
                       key=f"{key}-dl-zip", on_click="ignore", type="primary")


def _full_provenance(provenance: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    given = dict(provenance or {})
    if "runs" in given:
        return given
    return make_provenance(get_store(), list(given.get("run_ids", [])), given.get("function", "unknown"),
                           given.get("arguments", {}), name)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def file_downloads(fig: go.Figure, table: pd.DataFrame | None, provenance: Mapping[str, Any] | None, name: str,
                   options: ExportOptions, key: str) -> None:
    """A "Prepare files" button that renders the figure (and table) with these options, then their downloads."""
    stamp = _fingerprint(name, options.to_dict(), (provenance or {}).get("run_ids"), fig.to_json())
    slot = f"{key}-files"
    if st.button("Prepare files", key=f"{key}-prepare", type="primary"):
        try:
            with st.spinner("Rendering..."):
                full = _full_provenance(provenance, name)
                files = figure_files(fig, name, options, full)
                if table is not None and len(table):
                    files.update(table_files(table, f"{name}-table", {**full, "name": f"{name}-table"}))
            st.session_state[slot] = (stamp, files)
        except Exception as exc:  # a missing browser or a failed render is a message with its fix
            show_error(exc)
    prepared = st.session_state.get(slot)
    if prepared and prepared[0] == stamp:
        download_buttons(prepared[1], name, key)


def export_buttons(fig: go.Figure, table: pd.DataFrame | None, provenance: Mapping[str, Any] | None, name: str,
                   key: str | None = None, default_width: str = "single") -> None:
    """An "Export" expander under a figure: paper-size options, then the files to download."""
    key = key or f"export-{name}"
    with st.expander(f"Export {name} (PDF, SVG, PNG, CSV, LaTeX)"):
        options = options_form(key, default_width)
        if options is not None:
            file_downloads(fig, table, provenance, name, options, key)
