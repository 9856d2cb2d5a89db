"""Numeric precision and CPU threads, chosen for the hardware a run meets.

`--precision auto|fp32|bf16|fp16` (config key `precision`) is one setting for every experiment kind. `auto`
decides per device:
  - CPU: bf16 only where it is really fast: the CPU says it has native bf16 (AMX, AVX512-BF16, Arm BF16) and a
    sub-second matmul probe, run once per machine and cached machine-wide, confirms bf16 beats fp32 by
    `BF16_MIN_SPEEDUP`; otherwise fp32 (on AVX2-only CPUs torch emulates bf16 about 40x slower than fp32);
  - CUDA: bf16 where the GPU supports it, else fp16 with a gradient scaler; TF32 matmuls are allowed;
  - anything else (MPS): fp32.
The *resolved* precision is what a run records and what its id hashes (`resolve_config`), so a bf16 result
and an fp32 result are never served for each other.

Threads: a process uses the cores it may use (`os.sched_getaffinity`) divided among the runs that share the
machine (`--workers N`, `$PRUNESCOPE_WORKERS`, a Ray task's CPUs); `--threads N` overrides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from analysis.core.config import PRECISIONS
from analysis.core.errors import ConfigError

BF16_MIN_SPEEDUP = 1.3  # bf16 matmuls must beat fp32 by this much for `auto` to pick bf16 on a CPU
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PROBE_VERSION = 1  # bump when the probe changes, so cached verdicts are taken again


def check_precision(value: str, where: str = "precision") -> str:
    if value not in PRECISIONS:
        raise ConfigError(f"unknown precision {value!r}", where=where,
                          fix=f"use one of {', '.join(PRECISIONS)} (auto picks the fastest exact-enough one here)")
    return value


# -- what the CPU offers -------------------------------------------------------------------------------------


def cpu_capability() -> str:
    """torch's view of the CPU's vector ISA: 'AVX2', 'AVX512', 'AMX' ... ('DEFAULT' where it has none)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001  (very old torch builds)
        return "unknown"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 'flags', Arm 'Features'); empty where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_bf16_native(capability: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has bf16 arithmetic in hardware (AMX, AVX512-BF16, Arm BF16): a candidate for bf16."""
    capability = cpu_capability() if capability is None else capability
    flags = cpu_flags() if flags is None else flags
    if "AMX" in capability.upper() or "AVX512_BF16" in capability.upper():
        return True
    if flags & {"amx_bf16", "avx512_bf16"}:
        return True
    if "bf16" in flags and platform.machine().lower() in ("aarch64", "arm64"):
        return True
    return platform.system() == "Darwin" and platform.machine() == "arm64"  # Apple M2 and later: the probe decides


def matmul_gflops(dtype: torch.dtype, size: int = 512, seconds: float = 0.1, device: str = "cpu",
                  autocast: bool = False, rounds: int = 3) -> float:
    """Measured GFLOP/s of a square matmul in `dtype` (or fp32 inputs under autocast to `dtype`): the best of
    `rounds` windows of `seconds / rounds` each, after a warm-up window (kernel selection and JIT, packing), so a
    busy moment of another process does not decide."""
    src = torch.float32 if autocast else dtype
    a = torch.randn(size, size, device=device).to(src)
    b = torch.randn(size, size, device=device).to(src)
    ctx = torch.autocast(torch.device(device).type, dtype=dtype) if autocast else contextlib.nullcontext()
    window = seconds / rounds
    best = 0.0
    with torch.inference_mode(), ctx:
        for round_ in range(rounds + 1):  # round 0 warms up
            count, start = 0, time.perf_counter()
            while True:
                a @ b
                count += 1
                if device != "cpu":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
                if elapsed >= window and count >= 2:
                    break
            if round_:
                best = max(best, 2 * size ** 3 * count / elapsed / 1e9)
    return best


def machine_key() -> str:
    """What a cached probe verdict is valid for: the CPU model, its ISA as torch sees it, torch (not the thread
    count: the verdict is the hardware's, and one machine must make one choice)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}|{cpu_capability()}|torch {torch.__version__}|v{PROBE_VERSION}"


def _cache_file() -> Path:
    from analysis.core.settings import cache_home

    return cache_home() / "precision-probe.json"


_PROBED: dict[str, dict[str, Any]] = {}


def cpu_probe(refresh: bool = False) -> dict[str, Any]:
    """fp32 vs bf16 matmul speed on this CPU (under half a second), measured once per machine and kept in the
    machine-wide cache (`settings.cache_home()`), so every process and store on the machine makes one choice.
    Measuring holds a lock on the cache, so processes starting together wait for one measurement. `refresh`
    measures again (`bench precision` shows the verdict)."""
    key = machine_key()
    if not refresh and key in _PROBED:
        return _PROBED[key]
    path = _cache_file()
    with _locked(path):
        cached = None if refresh else _read_cache(path).get(key)
        if isinstance(cached, dict) and {"fp32_gflops", "bf16_gflops", "bf16_speedup"} <= set(cached):
            result = cached
        else:
            fp32 = matmul_gflops(torch.float32, seconds=0.15)
            bf16 = matmul_gflops(torch.bfloat16, seconds=0.15, autocast=True)
            result = {"fp32_gflops": fp32, "bf16_gflops": bf16, "bf16_speedup": bf16 / fp32, "measured": time.time()}
            _write_cache(path, key, result)
    _PROBED[key] = result
    return result


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the cache file (none where the folder cannot be made or locks are missing)."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a")
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, result: dict[str, Any]) -> None:
    """Best effort: a read-only cache folder only means the probe runs again in the next process."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**_read_cache(path), key: result}, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass


def cpu_bf16_fast() -> bool:
    """bf16 is worth it on this CPU: native bf16 hardware, confirmed by the cached matmul probe."""
    return cpu_bf16_native() and cpu_probe()["bf16_speedup"] >= BF16_MIN_SPEEDUP


# -- resolving -----------------------------------------------------------------------------------------------


def resolve(requested: str, device: str | torch.device = "cpu") -> str:
    """The precision a run uses on `device`: `requested` itself unless it is 'auto'."""
    check_precision(requested)
    if requested != "auto":
        return requested
    kind = torch.device(device).type if not isinstance(device, str) or device != "auto" else _auto_device()
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_bf16_fast() else "fp32"
    return "fp32"


def _auto_device() -> str:
    from analysis.core.settings import device_name

    return torch.device(device_name("auto")).type


def resolve_config(config: Any, device: str | torch.device = "auto") -> Any:
    """The config with every `precision` field (at any depth) resolved for `device`: what a run records and
    its id hashes. Idempotent; a config without such a field comes back unchanged."""
    if not dataclasses.is_dataclass(config):
        return config
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "precision" and value == "auto":
            changes[f.name] = resolve(value, device)
        elif dataclasses.is_dataclass(value):
            new = resolve_config(value, device)
            if new is not value:
                changes[f.name] = new
    return dataclasses.replace(config, **changes) if changes else config


# -- applying ------------------------------------------------------------------------------------------------


def autocast(device: torch.device | str, precision: str):
    """The autocast context for a resolved precision (a no-op for fp32)."""
    device = torch.device(device)
    if precision == "auto":
        precision = resolve(precision, device)
    dtype = _DTYPES.get(precision)
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device | str, precision: str) -> "torch.amp.GradScaler":
    """A gradient scaler, enabled only for fp16 on CUDA (bf16 and fp32 have fp32's exponent range)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")


def prepare_device(device: torch.device | str) -> None:
    """Per-device settings that hold whatever the precision: TF32 matmuls on CUDA."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# -- threads -------------------------------------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def workers_sharing() -> int:
    """How many runs share this machine: $PRUNESCOPE_WORKERS (default 1)."""
    from analysis.core.settings import max_workers

    return max(1, max_workers())


def thread_count(workers: int | None = None, threads: int | None = None) -> int:
    """Threads for one run: `threads` if given, else the usable cores divided among `workers` runs
    (default $PRUNESCOPE_WORKERS), at least 1."""
    if threads:
        if threads < 1:
            raise ConfigError(f"--threads {threads} is not a positive number", fix="use e.g. --threads 2")
        return threads
    return max(1, usable_cores() // max(1, workers or workers_sharing()))


def set_threads(workers: int | None = None, threads: int | None = None) -> int:
    """Set torch's intra-op threads for this process (see `thread_count`); returns the count.

    An explicit OMP_NUM_THREADS in the environment wins unless `threads` is given."""
    if not threads and os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return torch.get_num_threads()
    count = thread_count(workers, threads)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def describe() -> dict[str, Any]:
    """What `auto` sees on this machine, for each run's provenance: torch's CPU capability, native bf16, the
    usable cores (and a GPU's bf16 support)."""
    out: dict[str, Any] = {"cpu_capability": cpu_capability(), "cpu_bf16_native": cpu_bf16_native(),
                           "usable_cores": usable_cores()}
    if torch.cuda.is_available():
        out["cuda_bf16"] = bool(torch.cuda.is_bf16_supported())
    return out
