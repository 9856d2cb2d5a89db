"""Figure and table export with the real kaleido + system Chromium: file validity, paper sizes, text kept as
text, DPI, greyscale, LaTeX booktabs, provenance and study zips."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from analysis import CODE_VERSION
from analysis.cli.base import main
from analysis.core.errors import ConfigError
from analysis.figures import OKABE_ITO, metric_vs_sparsity, registry, sparsity_heatmap
from analysis.figures.export import (
    ExportOptions,
    export_bundle,
    figure_files,
    format_number,
    make_provenance,
    named_figure_files,
    prepare_figure,
    table_to_csv,
    table_to_latex,
    write_files,
)
from analysis.figures.render import Renderer, RenderError, browser_path, renderer
from analysis.figures.style import parse_colour, to_greyscale
from analysis.runs import experiment as jobs
from analysis.store.index import RunStore

PRUNING_FIGURES = ("metric-vs-nonzero", "metric-vs-sparsity", "parameter-bars", "sparsity-heatmap", "training-curves")


@pytest.fixture(scope="session", autouse=True)
def chromium():
    """Static export needs the system Chromium: fail loudly (CI installs it) rather than skip."""
    try:
        return browser_path()
    except RenderError as exc:
        pytest.fail(f"Chromium is required for the export tests: {exc.message}")


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory, tiny_models) -> tuple[RunStore, str]:
    """A store with a real tiny pruning sweep (sparsebert and random at 0.5 and 0.9, seed 0) and its teacher."""
    from analysis.methods.pruning import PruneConfig
    from analysis.studies.pruning_sweep import PruningSweepConfig

    folder = tmp_path_factory.mktemp("export-sweep")
    rows = [(t, 1) for t in ("a great film", "wonderful and moving", "i loved it", "superb story")] + \
           [(t, 0) for t in ("a terrible film", "boring and dull", "i hated it", "weak story")]
    (folder / "train.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows * 4))
    (folder / "eval.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    base = PruneConfig.from_flat({}, {"model": str(tiny_models["bert"]), "dataset": str(folder / "train.csv"),
                                      "eval_file": str(folder / "eval.csv"), "epochs": 1, "batch_size": 8})
    sweep = PruningSweepConfig(prune=base, methods=("sparsebert", "random"), sparsities=(0.5, 0.9), seeds=(0,))
    store = RunStore(folder / "runs")
    study = jobs.execute("sweep-pruning", sweep, store, save_weights=False).record
    return store, study.run_id


def rows() -> list[dict]:
    return [{"method": m, "encoder_sparsity": s, "value": 0.9 - s / 3 - i / 20 + seed / 100, "metric": "accuracy",
             "seed": seed} for i, m in enumerate(("sparsebert", "random", "small-dense")) for s in (0.5, 0.9)
            for seed in (0, 1)]


def pdf_streams(pdf: bytes) -> bytes:
    """Every content stream of a PDF, inflated."""
    out = b""
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out += zlib.decompress(match.group(1))
        except zlib.error:
            out += match.group(1)
    return out


def media_box(pdf: bytes) -> tuple[float, float]:
    x0, y0, x1, y1 = map(float, re.search(rb"/MediaBox \[([^\]]*)\]", pdf).group(1).split())
    return x1 - x0, y1 - y0


@pytest.mark.parametrize("width,inches", [("single", 3.3), ("double", 6.9)])
def test_pdf_is_valid_at_paper_size_with_embedded_fonts_and_real_text(width, inches):
    options = ExportOptions(width=width, formats=("pdf",))
    pdf = figure_files(metric_vs_sparsity(rows(), 0.91), "fig", options, {"run_ids": []})["fig.pdf"]
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    w, h = media_box(pdf)
    # Chromium quantises the page to 1/300 in (0.24 pt): within one point of the size asked
    assert abs(w - inches * 72) < 1.0 and abs(h - options.size()[1] * 72) < 1.0
    assert b"/FontFile" in pdf, "fonts are not embedded"
    assert re.search(rb"\bT[jJ]\b", pdf_streams(pdf)), "the PDF has no text-showing operators (text was outlined)"


def test_svg_keeps_text_as_text_elements():
    svg = figure_files(metric_vs_sparsity(rows()), "fig", ExportOptions(formats=("svg",)), {})["fig.svg"]
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert len(texts) >= 8
    assert "encoder sparsity (measured)" in texts and "sparsebert" in texts
    assert float(root.get("width")) == pytest.approx(3.3 * 96, abs=0.5)


@pytest.mark.parametrize("dpi", [150, 300])
def test_png_has_the_pixel_size_and_dpi_asked(dpi):
    options = ExportOptions(width="single", height=2.0, formats=("png",), dpi=dpi)
    png = figure_files(metric_vs_sparsity(rows()), "fig", options, {})["fig.png"]
    image = Image.open(io.BytesIO(png))
    assert abs(image.size[0] - 3.3 * dpi) <= 1 and abs(image.size[1] - 2.0 * dpi) <= 1
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.5)


def colours_in(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from colours_in(v, k)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from colours_in(v, key)
    elif isinstance(node, str) and (key.endswith("color") or key == "colorway" or key == "colorscale"):
        if parse_colour(node):
            yield node


def test_greyscale_is_a_pure_transform_with_no_chromatic_colour_and_distinct_lines():
    fig = metric_vs_sparsity(rows(), 0.91)
    before = fig.to_json()
    grey = to_greyscale(fig)
    assert fig.to_json() == before
    spec = grey.to_dict()
    colours = list(colours_in(spec))
    assert len(colours) > 20  # traces, bands, the dense line and the whole template
    for c in colours:
        r, g, b, _ = parse_colour(c)
        assert r == g == b, c
    lines = [t for t in spec["data"] if t.get("mode") == "lines+markers"]
    assert len({t["line"]["dash"] for t in lines}) == len(lines) == 3
    assert len({t["marker"]["symbol"] for t in lines}) == 3
    scales = [t["colorscale"] for t in to_greyscale(sparsity_heatmap({"a": {"by_layer_module": [[0.5] * 6]}})).to_dict()["data"]]
    assert all(parse_colour(c)[0] == parse_colour(c)[1] == parse_colour(c)[2] for scale in scales for _, c in scale)


def test_greyscale_svg_has_only_grey_pixels_and_strokes(sweep_store):
    store, study = sweep_store
    options = ExportOptions(formats=("svg",), greyscale=True)
    for name in ("metric-vs-sparsity", "sparsity-heatmap", "parameter-bars"):
        svg = named_figure_files(store, name, [study], options)[f"{name}.svg"].decode()
        for tag in re.findall(r"<[^>]+>", svg):
            if 'width="0" height="0"' in tag:  # the legend's empty scrollbar keeps plotly.js's default colour
                continue
            for r, g, b in re.findall(r"rgba?\((\d+), ?(\d+), ?(\d+)", tag):
                assert r == g == b, (name, tag)
        for data in re.findall(r'href="data:image/png;base64,([^"]+)"', svg):  # heatmaps are embedded rasters
            image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
            assert all(r == g == b for r, g, b in image.getdata())


def test_export_keeps_the_okabe_ito_palette():
    prepared = prepare_figure(metric_vs_sparsity(rows()), ExportOptions())
    assert list(prepared.layout.colorway) == list(OKABE_ITO[:7])  # Okabe-Ito without yellow for lines
    lines = [t for t in prepared.data if t.mode == "lines+markers"]
    assert {t.line.color for t in lines} <= set(OKABE_ITO[:7]) and len(lines) == 3
    assert prepared.layout.width == pytest.approx(3.3 * 96) and not prepared.layout.title.text


def test_latex_is_booktabs_with_escaped_text_and_formatted_numbers():
    df = pd.DataFrame({"run_id": ["a_b & c", "50% #1"], "note": ["x^2 {y} ~", "back\\slash $"],
                       "accuracy": [0.87345, float("nan")], "params": [123456, 7], "loss": [0.00012, 150.25]})
    tex = table_to_latex(df)
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    assert "\\begin{tabular}{llrrr}" in tex
    assert "run\\_id" in tex and "a\\_b \\& c" in tex and "50\\% \\#1" in tex and "\\$" in tex
    assert "\\textbackslash" in tex and "\\{y\\}" in tex and "\\textasciicircum" in tex
    assert "0.873" in tex and "123,456" in tex and "1.20e-04" in tex and "150.2" in tex and "--" in tex
    captioned = table_to_latex(df, caption="Results 100%")
    assert "\\begin{table}" in captioned and "\\caption{Results 100\\%}" in captioned
    assert pd.read_csv(io.StringIO(table_to_csv(df)))["params"].tolist() == [123456, 7]


def test_number_format():
    assert [format_number(v) for v in (3, 12345.0, 0.5, 0.0, 1e-5, 2500.7, None)] == \
        ["3", "12,345", "0.500", "0", "1.00e-05", "2,501", "--"]


def test_options_are_validated():
    with pytest.raises(ConfigError, match="format"):
        ExportOptions(formats=("gif",))
    with pytest.raises(ConfigError, match="width"):
        ExportOptions(width="triple")
    assert ExportOptions(width=5.0, height=2.0).size() == (5.0, 2.0)


def test_provenance_beside_a_named_figure(sweep_store, tmp_path):
    store, study = sweep_store
    paths = write_files(named_figure_files(store, "metric-vs-sparsity", [study], ExportOptions()), tmp_path)
    names = {p.name for p in paths}
    assert {"metric-vs-sparsity.pdf", "metric-vs-sparsity.svg", "metric-vs-sparsity.png",
            "metric-vs-sparsity.provenance.json", "metric-vs-sparsity-table.csv", "metric-vs-sparsity-table.tex",
            "metric-vs-sparsity-table.provenance.json"} == names
    prov = json.loads((tmp_path / "metric-vs-sparsity.provenance.json").read_text())
    members = store.require(study).summary["run_ids"]
    assert sorted(prov["run_ids"]) == sorted(members) and prov["seeds"] == [0]
    assert prov["function"] == "metric_vs_sparsity" and prov["arguments"]["rows"] == 4
    assert {r["config"]["method"] for r in prov["runs"]} == {"sparsebert", "random"}
    assert {r["config"]["sparsity"] for r in prov["runs"]} == {0.5, 0.9}
    assert all(r["versions"]["torch"] for r in prov["runs"])
    assert prov["code_version"] == CODE_VERSION and prov["exported_at"]
    assert {"plotly", "kaleido", "torch", "browser", "git_commit"} <= set(prov["exporter_versions"])
    import hashlib

    for name, info in prov["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == info["sha256"]
    assert prov["options"]["width_in"] == 3.3


def test_study_bundle_zip(sweep_store, tmp_path):
    store, study = sweep_store
    out = export_bundle(store, [study], tmp_path / "study.zip", ExportOptions(formats=("pdf", "svg", "png")))
    with zipfile.ZipFile(tmp_path / "study.zip") as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        for fig in PRUNING_FIGURES:
            for ext in ("pdf", "svg", "png", "provenance.json"):
                assert f"{fig}/{fig}.{ext}" in names
            assert f"{fig}/{fig}-table.tex" in names and f"{fig}/{fig}-table.csv" in names
            assert zf.read(f"{fig}/{fig}.pdf").startswith(b"%PDF-")
    assert set(PRUNING_FIGURES) <= set(manifest["figures"]) and not manifest["failed"]
    assert out["zip"].endswith("study.zip") and set(out["skipped"]) == set(manifest["skipped"])


def test_cli_figure_and_study_zip(sweep_store, tmp_path, monkeypatch, capsys):
    store, study = sweep_store
    monkeypatch.setenv("PRUNESCOPE_STORE", str(store.root))
    runs = ",".join(store.require(study).summary["run_ids"])
    code = main(["figure", "metric-vs-nonzero", "--runs", runs, "--format", "pdf,svg", "--width", "double",
                 "--greyscale", "--to", str(tmp_path / "out"), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["status"] == "done"
    assert {Path(f).name for f in result["files"]} >= {"metric-vs-nonzero.pdf", "metric-vs-nonzero.svg"}
    assert not (tmp_path / "out" / "metric-vs-nonzero.png").exists()
    assert abs(media_box((tmp_path / "out" / "metric-vs-nonzero.pdf").read_bytes())[0] - 6.9 * 72) < 1
    code = main(["figure", "--study", study, "--zip", str(tmp_path / "s.zip"), "--figures",
                 "sparsity-heatmap,parameter-bars", "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and sorted(result["figures"]) == ["parameter-bars", "sparsity-heatmap"]
    code = main(["figure", "no-such-figure", "--runs", runs, "--to", str(tmp_path), "--json"])
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 2 and "unknown figure" in error["error"] and "metric-vs-sparsity" in error["error"]


def test_registering_a_figure_is_one_decorator(monkeypatch, sweep_store):
    store, study = sweep_store
    monkeypatch.setattr(registry, "FIGURES", registry.Registry("figure"))

    @registry.register_figure("demo", kinds=("prune",))
    def _demo(store, run_ids):
        """A demo figure."""
        return registry.FigureResult(metric_vs_sparsity(rows()), None, list(run_ids), "metric_vs_sparsity")

    assert registry.FIGURES.names() == ["demo"] and registry.FIGURES.get("demo").description == "A demo figure."
    assert registry.figures_for(["prune"]) == ["demo"] and registry.figures_for(["finetune"]) == []
    built = registry.build_figure(store, "demo", [study])
    assert built.run_ids[0] == study and len(built.run_ids) == 5  # the study and its four member runs
    with pytest.raises(ValueError, match="twice"):
        registry.register_figure("demo")(_demo)


def test_renderer_is_kept_alive_between_exports():
    shared = renderer()
    fig = prepare_figure(metric_vs_sparsity(rows()), ExportOptions())
    shared.render(fig, "pdf", 317, 238)
    browser = shared._kaleido
    assert shared.running and renderer() is shared
    shared.render(fig, "svg", 317, 238)
    assert shared._kaleido is browser  # the same Chromium served both


def test_a_missing_browser_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PRUNESCOPE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(RenderError, match="PRUNESCOPE_CHROMIUM"):
        Renderer()
    monkeypatch.delenv("PRUNESCOPE_CHROMIUM")
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RenderError, match="apt-get install chromium"):
        browser_path()


def test_provenance_without_a_store_lists_the_runs():
    prov = make_provenance(None, ["abc"], "f", {"x": 1})
    assert prov["runs"] == [{"run_id": "abc"}] and prov["arguments"] == {"x": 1}


def test_the_exported_accuracy_figure_draws_the_knowledge_window_from_a_floor_run(tmp_path, tiny_models,
                                                                                  sentiment_files):
    """A pruning run and an embedding-bag fine-tune of the same data: the named figure finds the floor in the store,
    draws it with the dense line and the band, names the floor run in its provenance, and exports with the text."""
    from analysis.core.config import FinetuneConfig
    from analysis.methods.pruning import PruneConfig

    train, evaluation = sentiment_files
    common = {"tokenizer": str(tiny_models["bert"]), "dataset": str(train), "eval_file": str(evaluation),
              "batch_size": 8}
    store = RunStore(tmp_path / "runs")
    # a teacher that learns the task, and a floor that cannot (frozen embeddings, one slow epoch): a wide window
    pruned = jobs.execute("prune", PruneConfig.from_flat({}, {**common, "model": str(tiny_models["bert"]),
                                                              "method": "magnitude", "sparsity": 0.5, "epochs": 15,
                                                              "lr": 1e-3}), store, save_weights=False).record
    floor = jobs.execute("finetune", FinetuneConfig.from_flat({}, {**common, "model": "embedding-bag", "epochs": 1,
                                                                   "lr": 1e-4, "bag_freeze_embeddings": True}),
                         store, save_weights=False).record
    built = registry.build_figure(store, "metric-vs-sparsity", [pruned.run_id])
    assert built.arguments["floor_run"] == floor.run_id and built.arguments["floor"] == floor.metrics["accuracy"]
    assert built.arguments["dense"] > built.arguments["floor"] and floor.run_id in built.run_ids
    assert "rect" in [s.type for s in built.figure.layout.shapes]
    files = named_figure_files(store, "metric-vs-sparsity", [pruned.run_id], ExportOptions(formats=("svg", "pdf")))
    svg = ET.fromstring(files["metric-vs-sparsity.svg"])
    texts = " ".join("".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "floor (" in texts and "dense (" in texts and "knowledge window" in texts
    assert files["metric-vs-sparsity.pdf"].startswith(b"%PDF-")
    prov = json.loads(files["metric-vs-sparsity.provenance.json"])
    assert prov["arguments"]["floor_run"] == floor.run_id and floor.run_id in prov["run_ids"]
