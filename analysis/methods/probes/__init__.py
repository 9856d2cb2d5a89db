"""Knowledge-loss probes, one per file, registered by name in PROBES (found by the registry: one file each)."""

from analysis.methods.probes.base import PROBES, Probe, ProbeTarget

__all__ = ["PROBES", "Probe", "ProbeTarget"]
