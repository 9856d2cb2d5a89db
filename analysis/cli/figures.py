"""`python -m analysis figure ...`: registered figures from the store to PNG/SVG/PDF (+ table, provenance), one
figure or a whole study as a zip; and `python -m analysis bench export`: how long a PDF takes, cold and warm.

    python -m analysis figure --list
    python -m analysis figure metric-vs-sparsity --runs RUN_ID,... --format pdf,svg --width single --to out/
    python -m analysis figure --study RUN_ID --zip out.zip
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analysis.cli.base import arguments, command
from analysis.core.errors import ConfigError
from analysis.figures.export import ExportOptions, export_bundle, named_figure_files, write_files
from analysis.figures.registry import FIGURES
from analysis.service.runs import RunStore


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _width(text: str | None) -> str | float | None:
    if text is None or text in ("single", "double"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--width {text!r} is neither single, double nor inches", fix="e.g. --width single or --width 5") from None


def _figure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the figure (see --list)")
    parser.add_argument("--list", action="store_true", help="list the registered figures")
    parser.add_argument("--runs", help="comma-separated run ids (a study id brings its member runs)")
    parser.add_argument("--study", help="a study run id: every figure that applies (with --zip)")
    parser.add_argument("--figures", help="with --study: only these figures (comma-separated)")
    parser.add_argument("--format", default="pdf,svg,png", help="comma-separated: pdf, svg, png")
    parser.add_argument("--width", help="single (3.3 in), double (6.9 in) or inches (default: the figure's own)")
    parser.add_argument("--height", type=float, help="inches (default: a width-dependent aspect)")
    parser.add_argument("--dpi", type=int, default=300, help="PNG resolution")
    parser.add_argument("--greyscale", action="store_true", help="grey levels, with dashes/markers per trace")
    parser.add_argument("--keep-title", action="store_true", help="keep the figure title (default: the caption says it)")
    parser.add_argument("--to", help="output folder for one figure")
    parser.add_argument("--zip", help="output zip for --study")


def _options(args: argparse.Namespace) -> ExportOptions:
    return ExportOptions(width=_width(args.width), height=args.height, formats=tuple(_split(args.format)),
                         dpi=args.dpi, greyscale=args.greyscale, keep_title=args.keep_title)


@command("figure", "export a registered figure (or all of a study as a zip) as PDF/SVG/PNG with tables and provenance")
@arguments(_figure_arguments)
def figure(args: argparse.Namespace) -> dict[str, Any]:
    """Export one named figure to a folder, or every figure of a study to a zip."""
    if args.list:
        return {"figures": {n: {"kinds": list(FIGURES.get(n).kinds), "description": FIGURES.get(n).description,
                                "width": FIGURES.get(n).width}
                            for n in FIGURES.names()}}
    options, store = _options(args), RunStore()
    if args.study:
        if not args.zip:
            raise ConfigError("--study needs --zip", fix="add --zip out.zip")
        manifest = export_bundle(store, [args.study], args.zip, options, _split(args.figures) or None)
        return {"status": "done", **manifest}
    if not args.name or not args.runs or not args.to:
        raise ConfigError("a figure export needs NAME, --runs and --to",
                          fix="e.g. `python -m analysis figure metric-vs-sparsity --runs ID1,ID2 --to out/` "
                              "(or --study ID --zip out.zip; --list shows the names)")
    files = named_figure_files(store, args.name, _split(args.runs), options)
    paths = write_files(files, Path(args.to))
    return {"status": "done", "figure": args.name, "files": [str(p) for p in paths], "options": options.to_dict()}
