"""`python -m analysis app`: the dashboard on 127.0.0.1 unless told otherwise (the same as `make app`)."""

from __future__ import annotations

import os
import sys
from typing import Any

from analysis.cli.base import arguments, command
from analysis.core.settings import PROJECT_ROOT

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def streamlit_argv(address: str, port: int) -> list[str]:
    """The command line that serves app.py headless on address:port."""
    return [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"), "--server.address", address,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def exposure_warning(address: str, token: str | None) -> str | None:
    """A warning when the dashboard would listen beyond this machine without an access token."""
    if address in LOOPBACK or (token or "").strip():
        return None
    return (f"warning: the dashboard listens on {address} and anyone who can reach it may launch, cancel and "
            "delete runs; set PRUNESCOPE_TOKEN=<a long random string> to require it for those actions")


def _app_arguments(parser: Any) -> None:
    parser.add_argument("--address", default="127.0.0.1", help="interface to listen on (0.0.0.0: every one)")
    parser.add_argument("--port", type=int, default=8501)


@command("app", "start the dashboard (on 127.0.0.1 unless --address says otherwise; PRUNESCOPE_TOKEN guards actions)")
@arguments(_app_arguments)
def app(args: Any) -> dict[str, Any]:
    warning = exposure_warning(args.address, os.environ.get("PRUNESCOPE_TOKEN"))
    if warning:
        print(warning, file=sys.stderr)
    argv = streamlit_argv(args.address, args.port)
    os.execv(argv[0], argv)  # never returns: streamlit takes over this process
    return {"status": "done"}  # pragma: no cover
