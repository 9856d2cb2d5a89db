"""Knowledge-loss probes, one per file, registered by name in PROBES."""

from analysis.methods.probes import cka
from analysis.methods.probes import fidelity
from analysis.methods.probes import layer_probe
from analysis.methods.probes import mlm
from analysis.methods.probes import transfer  # noqa: F401  (each registers its probe)
from analysis.methods.probes.base import PROBES, Probe, ProbeTarget

__all__ = ["PROBES", "Probe", "ProbeTarget"]
