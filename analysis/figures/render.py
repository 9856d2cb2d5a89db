"""Static images of plotly figures through kaleido v1 and the system Chromium, kept alive between exports.

Kaleido v1 drives a headless Chromium over the DevTools protocol. Starting the browser takes seconds; a
render on a warm browser takes a fraction of one. `renderer()` is the process-wide renderer: the first
call starts Chromium on a private event-loop thread and later calls reuse it (kaleido's own
`start_sync_server` does the same but waits without a time limit, so a dead browser would hang the caller;
here every call has a timeout and a broken browser is restarted once).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go

from analysis.core.errors import PruneScopeError

FORMATS = ("png", "svg", "pdf")
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
START_TIMEOUT_S = 60.0
RENDER_TIMEOUT_S = 60.0


class RenderError(PruneScopeError):
    """A static image could not be made (no browser, or the browser failed)."""


def browser_path() -> str:
    """The Chromium to use: $PRUNESCOPE_CHROMIUM or $BROWSER_PATH if set, else the first on PATH."""
    explicit = os.environ.get("PRUNESCOPE_CHROMIUM") or os.environ.get("BROWSER_PATH")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise RenderError(f"no executable browser at {explicit!r} (PRUNESCOPE_CHROMIUM/BROWSER_PATH)",
                              fix="point PRUNESCOPE_CHROMIUM at a Chromium or Chrome binary, or unset it")
        return explicit
    found = next((p for p in map(shutil.which, BROWSER_NAMES) if p), None)
    if found is None:
        raise RenderError("static figure export needs Chromium, and none is installed",
                          fix="install it with `apt-get install chromium` (.ci/run does), or set "
                              "PRUNESCOPE_CHROMIUM=/path/to/chrome")
    return found


@lru_cache(maxsize=4)
def browser_version(path: str) -> str:
    """The browser's own version line (for provenance)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or out.stderr.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Renderer:
    """One headless Chromium (a kaleido.Kaleido) on its own asyncio loop thread; thread-safe `render`."""

    def __init__(self, path: str | None = None, timeout: float = RENDER_TIMEOUT_S):
        self.path = path or browser_path()
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._kaleido is not None

    def start(self) -> None:
        """Start the browser (a no-op when it runs)."""
        with self._lock:
            if self._kaleido is None:
                self._start()

    def _start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kaleido-renderer", daemon=True)
        self._thread.start()
        try:
            self._kaleido = self._call(self._open(), START_TIMEOUT_S)
        except Exception as exc:
            self._stop_loop()
            raise RenderError(f"Chromium at {self.path} did not start for static export ({type(exc).__name__}: "
                              f"{exc})", fix="check that `chromium --headless --no-sandbox --version` works, "
                              "or set PRUNESCOPE_CHROMIUM to another browser") from exc

    async def _open(self) -> Any:
        import kaleido

        # mathjax=False: no CDN fetch (no internet); the sandbox is off by default, as running as root needs.
        k = kaleido.Kaleido(path=self.path, mathjax=False, timeout=self.timeout)
        await k.open()
        return k

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def render(self, fig: go.Figure, fmt: str, width_px: float, height_px: float, scale: float = 1.0) -> bytes:
        """The figure as PNG, SVG or PDF bytes; a failed browser is restarted and the render tried once more."""
        if fmt not in FORMATS:
            raise RenderError(f"unknown image format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")
        opts = {"format": fmt, "width": width_px, "height": height_px, "scale": scale}
        for attempt in (1, 2):
            self.start()
            try:
                return self._call(self._kaleido.calc_fig(fig, opts=opts), self.timeout)
            except Exception as exc:  # kaleido and choreographer raise many kinds; restart the browser once
                self.close()
                if attempt == 2:
                    raise RenderError(f"rendering the figure as {fmt} failed: {type(exc).__name__}: {exc}",
                                      fix="try again; if it persists, check the figure renders in the dashboard") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the browser and its loop thread."""
        with self._lock:
            if self._kaleido is not None:
                try:
                    self._call(self._kaleido.close(), 20)
                except Exception:  # a browser that already died cannot be closed cleanly; the loop still stops
                    pass
                self._kaleido = None
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            if not self._loop.is_running():
                self._loop.close()
        self._loop, self._thread = None, None


_shared: Renderer | None = None
_shared_lock = threading.Lock()


def renderer() -> Renderer:
    """The process-wide kept-alive renderer (started on first use, closed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Renderer()
            atexit.register(_shared.close)
        return _shared
