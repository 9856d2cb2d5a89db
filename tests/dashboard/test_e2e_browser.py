"""End to end in a real headless Chromium (Playwright driving the system browser): start `streamlit run app.py`,
launch a tiny fine-tune and a tiny prune from the Launch page, see them finish on the Runs page, open the
Sparsity and Accuracy views, export a figure as PDF and SVG through the download buttons, check the files, and
save a full-page screenshot of every page to test-artifacts/screenshots/.

Needs Chromium (`apt-get install chromium`; .ci/run installs it) and the `playwright` wheel
(requirements-dev.txt); Playwright's own browser download is never used. A missing browser fails the test.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the `browser` fixture as a failure with the fix
    expect = sync_playwright = None
    PlaywrightTimeout = TimeoutError

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("PRUNESCOPE_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ("Home", "Runs", "Launch", "Explore", "Sparsity", "Accuracy", "Data scale", "Probes", "Child-Tuning", "Compare", "Export")
RUN_TIMEOUT_MS = 120_000  # a tiny run, worker start-up included, takes seconds; this is the give-up point
UI_TIMEOUT_MS = 30_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    """Until Streamlit answers its health check; a server that exits or never answers fails with its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit did not answer on {url} within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def stop_jobs(store_root: Path) -> None:
    """Cancel whatever the test left queued or running, so no worker outlives it."""
    from analysis.runs.queue import ACTIVE, JobQueue
    from analysis.store.index import RunStore

    if not (store_root / "index.sqlite").exists():
        return
    queue = JobQueue(RunStore(store_root))
    for job in queue.rows(recent=0):
        if job["status"] in ACTIVE:
            queue.cancel(job["run_id"], grace=5.0)


@pytest.fixture
def app(tmp_path, monkeypatch):
    """`streamlit run app.py` on a free localhost port, on a private store, with one background worker (workers
    started from the test itself get the same settings)."""
    store = tmp_path / "runs"
    for name, value in (("PRUNESCOPE_STORE", str(store)), ("PRUNESCOPE_WORKERS", "1"), ("OMP_NUM_THREADS", "1")):
        monkeypatch.setenv(name, value)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PRUNESCOPE_STORE": str(store), "PRUNESCOPE_WORKERS": "1", "PRUNESCOPE_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PRUNESCOPE_CHROMIUM": CHROMIUM}
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(url, proc, log)
        yield url, store
    finally:
        stop_jobs(store)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def browser():
    """The system Chromium under Playwright; its absence is a failure with the fix, never a skip."""
    if sync_playwright is None:
        pytest.fail("the browser test needs Playwright: `.venv/bin/pip install -r requirements-dev.txt`")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` (.ci/run does), "
                    "or set PRUNESCOPE_CHROMIUM to a Chromium/Chrome binary")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


# -- page helpers -------------------------------------------------------------------------------------


# Counts the script runs the page has seen (Streamlit flips data-test-script-state on its app element), so an
# action that triggers a rerun can wait for that rerun to start and finish instead of sleeping.
COUNT_RUNS = """
window.__stRuns = 0;
new MutationObserver(changes => {
  for (const c of changes)
    if (c.target.getAttribute('data-test-script-state') === 'running' && c.oldValue !== 'running') window.__stRuns++;
}).observe(document, {attributes: true, subtree: true, attributeOldValue: true,
                      attributeFilter: ['data-test-script-state']});
"""
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning'][data-test-connection-state='CONNECTED']"


def settle(page) -> None:
    """Until the script is not running and no element is stale (left over from before the rerun)."""
    page.locator(IDLE).wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=UI_TIMEOUT_MS)


def rerun_by(page, action, seconds: float = 5.0) -> None:
    """Do `action` (a click, an Enter) and wait for the rerun it triggers to start (a very quick rerun may not
    show as running at all, so this waits `seconds` at most) and to finish."""
    before = page.evaluate("window.__stRuns")
    action()
    try:
        page.wait_for_function("n => window.__stRuns > n", arg=before, timeout=seconds * 1000)
    except PlaywrightTimeout:
        pass  # the callers check the outcome they expect (a value, an element) with auto-waiting assertions
    settle(page)


def go_to(page, title: str) -> None:
    """Click a page in the sidebar and wait for its script to finish."""
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url(href)
    page.locator("h1").first.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    settle(page)


def slug(title: str) -> str:
    """A page title as a file name: 'Data scale' -> data-scale."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def shoot(page, name: str) -> Path:
    """A full-page screenshot: the viewport is stretched to the app's scrolling content first."""
    settle(page)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
                           ".every(c => c.querySelector('.main-svg'))", timeout=UI_TIMEOUT_MS)
    height = page.evaluate("() => Math.max(document.body.scrollHeight,"
                           " ...[...document.querySelectorAll('[data-testid=\"stMain\"], section.main')]"
                           ".map(e => e.scrollHeight))")
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(max(int(height) + 40, 900), 12000)})
    settle(page)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})
    return path


def key_of(key: str) -> str:
    """The CSS class Streamlit gives the container of a widget with this key."""
    return ".st-key-" + re.sub(r"[^A-Za-z0-9_-]", "-", key)


def fill(page, key: str, value: str) -> None:
    """Type into a text or number input (found by its widget key) and commit it with Enter."""
    box = page.locator(f"{key_of(key)} input")
    if box.input_value() == value:
        return  # nothing changes, so no rerun comes
    box.fill(value)
    rerun_by(page, lambda: box.press("Enter"))
    expect(box).to_have_value(value)


def open_expander(page, name: str) -> None:
    """Unfold an expander (found by its exact title) if it is folded."""
    title = page.locator("summary p").filter(has_text=re.compile(f"^{name}$"))
    details = page.get_by_test_id("stExpander").filter(has=title).locator("details").first
    if details.get_attribute("open") is None:
        title.click()
        page.wait_for_function("d => d.open", arg=details.element_handle())


def pick(page, box, option: str, attempts: int = 4) -> None:
    """Choose an option of a selectbox (a locator of its container) by the option's exact text. A rerun that
    lands while the list is open closes it, so the list is opened again (a few times at most)."""
    combo = box.get_by_role("combobox")
    for _ in range(attempts):
        if combo.input_value() == option:
            return
        settle(page)
        box.get_by_role("button", name="Open").click()
        choice = page.get_by_role("option", name=option, exact=True)
        try:
            choice.wait_for(state="visible", timeout=3000)
            rerun_by(page, lambda: choice.click(timeout=3000))
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
    expect(combo).to_have_value(option)


def options_of(page, box, expected: str, attempts: int = 4) -> list[str]:
    """The option texts of a selectbox, read from its open list (opened again if a rerun closed it before
    an option containing `expected` showed)."""
    texts: list[str] = []
    for _ in range(attempts):
        settle(page)
        box.get_by_role("button", name="Open").click()
        box.get_by_role("combobox").fill(expected)  # filter: a long list renders only its first options
        try:
            page.get_by_role("option").filter(has_text=expected).first.wait_for(state="visible", timeout=3000)
            texts = page.get_by_role("option").all_inner_texts()
        except PlaywrightTimeout:
            pass
        page.keyboard.press("Escape")
        if any(expected in t for t in texts):
            break
    return texts


def launch(page, kind: str, title: str, values: dict[str, str], method: str | None = None) -> str:
    """Fill the Launch form of `kind` with these values (by field name) and submit it; returns the queued run id."""
    go_to(page, "Launch")
    choice = page.get_by_test_id("stRadio").get_by_text(title, exact=True)
    if not page.locator(key_of(f"launch:{kind}:go")).is_visible():
        rerun_by(page, choice.click)
    page.locator(key_of(f"launch:{kind}:go")).wait_for()
    for group in ("Model", "Train"):
        open_expander(page, group)
    if method:
        pick(page, page.locator(key_of(f"launch:{kind}:method")), method)
    for name, value in values.items():
        fill(page, f"launch:{kind}:{name}", value)
    rerun_by(page, page.locator(key_of(f"launch:{kind}:go")).get_by_role("button").click)
    queued = page.get_by_test_id("stAlert").filter(has_text="Queued as run")
    expect(queued).to_be_visible()
    return re.search(r"Queued as run `?([0-9a-f]{16})", queued.inner_text()).group(1)


def wait_finished(page, store: Path, run_id: str) -> None:
    """On the Runs page, until the queue is empty (the page refreshes itself while work runs); then the run is
    listed as done."""
    from analysis.store.index import RunStore

    go_to(page, "Home")  # away first: on the Runs page already, its last "Nothing queued" would pass at once
    go_to(page, "Runs")
    expect(page.get_by_role("heading", name="Launched jobs")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text("Nothing queued or running.")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    settle(page)
    if RunStore(store).get(run_id) is None:  # the job ended without a run: say why (the queue keeps its error)
        from analysis.runs.queue import JobQueue

        jobs = [j for j in JobQueue(RunStore(store)).rows(recent=50) if j["run_id"] == run_id]
        pytest.fail(f"run {run_id} is not in the store; its job: {jobs}")
    record = RunStore(store).require(run_id)
    assert record.status == "done", f"run {run_id} is {record.status}: {record.error}"
    listed = [o for o in options_of(page, page.locator(key_of("runs:pick")), run_id) if o.startswith(run_id)]
    assert listed and listed[0].endswith(" · done"), listed


def chart_texts(page, index: int) -> str:
    """The text of the index-th plotly chart on the page (axis titles, legend, ticks)."""
    chart = page.get_by_test_id("stPlotlyChart").nth(index)
    chart.locator(".main-svg").first.wait_for()
    return chart.inner_text() + " " + " ".join(chart.locator("text").all_text_contents())


# -- the test, step by step ---------------------------------------------------------------------------


def launch_and_watch(page, store: Path, model: Path, train: Path, evaluation: Path) -> tuple[str, str]:
    """A tiny fine-tune and a tiny prune of it from the Launch form, each watched until done on the Runs page.
    The run ids say every value typed reached the config (the same ids as from the CLI)."""
    from analysis.core.config import FinetuneConfig
    from analysis.methods.pruning import PruneConfig
    from analysis.runs.experiment import run_id
    from analysis.store.index import RunStore

    tiny = {"model": str(model), "dataset": str(train), "eval_file": str(evaluation), "epochs": "3", "batch_size": "8",
            "lr": "0.001"}  # enough for the tiny model to learn, so the Explore page has something to lose
    finetune = launch(page, "finetune", "Fine-tune (vanilla, Child-Tuning)", tiny)
    assert finetune == run_id("finetune", FinetuneConfig.from_flat({}, tiny))
    wait_finished(page, store, finetune)
    # the same model, data and training: the fine-tune is found in the store as the prune's teacher
    pruned = launch(page, "prune", "Prune", {**tiny, "sparsity": "0.5"}, method="magnitude")
    assert pruned == run_id("prune", PruneConfig.from_flat({}, {**tiny, "sparsity": "0.5", "method": "magnitude"}))
    shoot(page, "launch-prune-queued")
    wait_finished(page, store, pruned)
    assert RunStore(store).require(pruned).summary["teacher"] == finetune
    return finetune, pruned


def explore(page, store: Path, finetune: str) -> str:
    """The Explore page on the fine-tune: move the sparsity slider, click a head, see the metric change, then turn
    the edit into a run and see it queued (and finish). Returns the queued run's id."""
    go_to(page, "Explore")
    kl = page.get_by_test_id("stMetricValue").nth(2)  # KL(unedited || edited): 0 before any edit
    expect(kl).to_have_text("0")
    thumb = page.locator(key_of(f"whatif:sparsity:{finetune}")).get_by_role("slider")
    thumb.focus()
    rerun_by(page, lambda: thumb.press("End"))  # 95% of the weights by magnitude
    expect(page.get_by_text("95% magnitude").first).to_be_visible()
    rerun_by(page, page.locator(key_of(f"whatif:heads:{finetune}:0")).get_by_role("button", name="1", exact=True).click)
    expect(page.get_by_text("1 head(s)").first).to_be_visible()
    assert float(kl.inner_text()) > 0  # the edited model's predictions moved (a tiny model's accuracy may not)
    shoot(page, "explore-edit")
    rerun_by(page, page.get_by_role("button", name="Retrain this edit").click)
    queued = page.get_by_test_id("stAlert").filter(has_text="Queued run")
    expect(queued).to_be_visible()
    return re.search(r"Queued run ([0-9a-f]{16})", queued.inner_text()).group(1)


def check_views(page, pruned: str) -> None:
    """The prune run's sparsity heatmap and its point on the accuracy-vs-sparsity lines."""
    go_to(page, "Sparsity")
    expect(page.get_by_test_id("stMultiSelect").first).to_contain_text(pruned[:8])
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)
    assert page.get_by_test_id("stPlotlyChart").first.locator(".heatmaplayer .hm").count() >= 1
    assert "magnitude" in chart_texts(page, 0)
    go_to(page, "Accuracy")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(3)  # vs sparsity, vs non-zero, training curves
    assert "magnitude" in chart_texts(page, 0) and "sparsity" in chart_texts(page, 0).lower()


def export_figure(page, pruned: str, folder: Path) -> dict[str, Path]:
    """The prune run's metric-vs-sparsity figure as PDF and SVG, through the Export page's download buttons."""
    go_to(page, "Export")
    expect(page.get_by_test_id("stMultiSelect").first).to_contain_text(pruned[:8])
    pick(page, page.get_by_test_id("stSelectbox").filter(has_text="Figure"),
         "metric-vs-sparsity: Task metric vs measured sparsity, one line per method")
    page.get_by_role("button", name="Prepare files").click()
    files = {}
    for ext in ("pdf", "svg"):
        button = page.get_by_test_id("stDownloadButton").get_by_role("button", name=f"metric-vs-sparsity.{ext}")
        expect(button).to_be_visible(timeout=RUN_TIMEOUT_MS)
        with page.expect_download() as download:
            button.click()
        files[ext] = folder / download.value.suggested_filename
        download.value.save_as(files[ext])
    shoot(page, "export-files")
    return files


def queue_more(store: Path, model: Path, train: Path, evaluation: Path, finetune: str) -> list[str]:
    """Work for the other pages, through analysis.runs.queue.submit (the queue the Launch page uses): a Child-D
    fine-tune, probes of the fine-tune, a tiny data-scale study; and the reference studies under results/ (what
    `make app` imports into an empty store)."""
    from analysis.core.config import FinetuneConfig
    from analysis.runs.probe import ProbeConfig
    from analysis.runs.queue import submit
    from analysis.store.bundles import import_runs
    from analysis.store.index import RunStore
    from analysis.studies.data_scale import ScaleConfig

    base = {"model": str(model), "dataset": str(train), "eval_file": str(evaluation), "epochs": 1, "batch_size": 16}
    child = FinetuneConfig.from_flat({}, {**base, "method": "child-d", "options": {"p": 0.3}})
    scale = ScaleConfig(finetune=FinetuneConfig.from_flat({}, base), sizes=(12, 24), seeds=(0, 1),
                        arms=("transformer", "lstm"), transformer_budget=200, lstm_budget=400,
                        transformer_max_epochs=3.0, lstm_max_epochs=3.0)
    probes = ProbeConfig(target=finetune, probes=("fidelity", "cka", "layer-probe"))
    queued = [submit(kind, config, RunStore(store))
              for kind, config in (("finetune", child), ("probe", probes), ("study-scale", scale))]
    import_runs(RunStore(store), ROOT / "results")
    return queued


def shoot_every_page(page) -> list[str]:
    """Open every page of the sidebar: no traceback, no error message; a full-page screenshot of each."""
    titles = page.get_by_test_id("stSidebarNav").locator("a p").all_inner_texts()
    assert set(PAGES) <= set(titles), titles
    for title in titles:
        go_to(page, title)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
        shoot(page, slug(title))
    return titles


def test_launch_watch_explore_and_export_in_a_real_browser(browser, app, tiny_models, sentiment_files, tmp_path):
    url, store = app
    model, (train, evaluation) = tiny_models["bert"], sentiment_files
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    context.add_init_script(COUNT_RUNS)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page.goto(url)
        expect(page.get_by_role("heading", name="PruneScope")).to_be_visible()  # Home opens first
        go_to(page, "Runs")
        expect(page.get_by_text("The store is empty")).to_be_visible()
        shoot(page, "runs-empty")
        finetune, pruned = launch_and_watch(page, store, model, train, evaluation)
        check_views(page, pruned)
        files = export_figure(page, pruned, tmp_path)
        pdf, svg = files["pdf"].read_bytes(), files["svg"].read_text(encoding="utf-8")
        assert files["pdf"].name == "metric-vs-sparsity.pdf" and pdf.startswith(b"%PDF-")
        assert pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 2000
        assert svg.lstrip().startswith(("<svg", "<?xml")) and "</svg>" in svg
        texts = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
        assert len(texts) >= 5 and any("magnitude" in t for t in texts), texts
        wait_finished(page, store, explore(page, store, finetune))
        for queued in queue_more(store, model, train, evaluation, finetune):
            wait_finished(page, store, queued)
        shoot_every_page(page)
    except Exception:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)  # what the browser showed, for CI
        raise
    finally:
        context.close()
