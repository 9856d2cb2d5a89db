"""Knowledge-loss probes, one per file, registered by name in PROBES."""

from . import cka, fidelity, layer_probe, mlm, run, transfer  # noqa: F401  (each registers its probe)
from .base import PROBES, Probe, ProbeTarget

__all__ = ["PROBES", "Probe", "ProbeTarget"]
