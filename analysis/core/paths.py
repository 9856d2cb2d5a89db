"""Path confinement: every user-named path the backend opens on someone else's behalf goes through here.

Paths typed on the command line are explicit and allowed as given. Paths that reach the backend any other way
(a dashboard launch, the job queue, an imported results bundle, artefact and export file names, run ids) must
resolve, symlinks followed, inside an allowed root: the data root ($PRUNESCOPE_DATA), the store
($PRUNESCOPE_STORE), the embedded default model, or a folder named in $PRUNESCOPE_ALLOWED_PATHS (the way to
allow a path explicitly for the dashboard: `PRUNESCOPE_ALLOWED_PATHS=/data/mine:/models make app`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from analysis.core import settings
from analysis.core.config import BASELINE_MODELS
from analysis.core.errors import ConfigError, StoreError

RUN_ID = re.compile(r"^[0-9a-f]{16}$")
ALLOWED_ENV = "PRUNESCOPE_ALLOWED_PATHS"
# config fields that name files or folders, and how to tell a path from a registered name or a hub id
FILE_FIELDS = ("dataset", "eval_file", "masks", "model", "tokenizer")


class PathError(ConfigError):
    """A user-named path resolves outside the roots it may use."""


def is_user_file(dataset: str) -> bool:
    """Whether a `dataset` value names a user's file (by its suffix) rather than a registered dataset."""
    return Path(dataset).suffix.lower() in {".csv", ".tsv", ".jsonl", ".json", ".txt"}


def check_run_id(value: Any, what: str = "run id") -> str:
    """The value as a run id (16 lowercase hex digits), or a StoreError before any file is touched."""
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        raise StoreError(f"{what} {value!r} is not a run id (16 lowercase hex digits)",
                         fix="copy the id from `python -m analysis runs` or the Runs page")
    return value


def allowed_roots() -> list[Path]:
    """The data root, the store, the embedded default model and every folder in $PRUNESCOPE_ALLOWED_PATHS."""
    roots = [settings.data_root(), settings.store_root()]
    try:
        roots.append(settings.default_model_path())
    except Exception:  # the embedded model is not installed: nothing to allow
        pass
    extra = os.environ.get(ALLOWED_ENV, "")
    roots += [Path(p) for p in extra.split(os.pathsep) if p.strip()]
    return [Path(r).expanduser().resolve() for r in roots]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine(path: str | Path, roots: Iterable[str | Path] | None = None, what: str = "path") -> Path:
    """`path` resolved (`~`, `..` and symlinks) if it lies inside one of `roots` (default: allowed_roots())."""
    text = str(path)
    if not text.strip() or "\x00" in text:
        raise PathError(f"{what} {text!r} is empty or holds a NUL byte", fix="give a real file or folder path")
    resolved = Path(text).expanduser().resolve()
    bases = [Path(r).expanduser().resolve() for r in (allowed_roots() if roots is None else roots)]
    if any(_inside(resolved, root) for root in bases):
        return resolved
    shown = ", ".join(str(r) for r in bases) or "none"
    via = f" (it resolves to {resolved})" if str(resolved) != text else ""
    raise PathError(
        f"{what} {text!r}{via} is outside the folders it may use: {shown}",
        fix=f"copy it under the data root ({settings.data_root()}), or allow its folder explicitly when starting "
            f"the dashboard: {ALLOWED_ENV}=/its/folder (several joined by '{os.pathsep}'); on the command line "
            "give it directly (`python -m analysis ... --dataset /its/path`)")


def child(folder: str | Path, name: str, what: str = "file name") -> Path:
    """folder/name for a plain file name: no separators, no '..', nothing that leaves `folder`."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise PathError(f"{what} {name!r} is not a plain file name", fix="use a name without '/', '\\' or '..'")
    return confine(Path(folder) / name, [folder], what)


def _looks_like_path(key: str, value: str) -> bool:
    """Whether a config value names a local file or folder (as the loaders will read it) rather than a name."""
    if key == "eval_file":
        return True
    if key == "dataset":
        return is_user_file(value)
    if key == "masks":
        return value.endswith(".safetensors") or Path(value).expanduser().is_file()
    if value == "default" or value in BASELINE_MODELS:
        return False
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists()  # as models.resolve decides


def config_paths(tree: Mapping[str, Any], where: str = "config") -> Iterator[tuple[str, str]]:
    """(where, value) of every path-valued field in a config's dict, sub-configs and method options included."""
    for key, value in tree.items():
        here = f"{where}.{key}"
        if isinstance(value, Mapping):
            yield from config_paths(value, here)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from config_paths(item, f"{here}[{i}]")
        elif key in FILE_FIELDS and isinstance(value, str) and value and _looks_like_path(key, value):
            yield here, value


def confine_config(config: Any, roots: Iterable[str | Path] | None = None) -> None:
    """Every file or folder a config names must lie inside the allowed roots (a dashboard or queue launch)."""
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    bases = allowed_roots() if roots is None else list(roots)
    for where, value in config_paths(tree):
        confine(value, bases, what=where)
