"""Settings read from the environment, with their defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The local data mirror: $PRUNESCOPE_DATA, default ../shared/data beside the project."""
    return Path(os.environ.get("PRUNESCOPE_DATA", PROJECT_ROOT.parent / "shared" / "data")).expanduser()


def store_root() -> Path:
    """The run store: $PRUNESCOPE_STORE, default ./runs."""
    return Path(os.environ.get("PRUNESCOPE_STORE", "runs")).expanduser().resolve()


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
