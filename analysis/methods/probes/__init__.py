"""Knowledge-loss probes, one per file, registered by name in PROBES."""

from analysis.methods.probes import (
    cka,  # noqa: F401
    fidelity,  # noqa: F401
    layer_probe,  # noqa: F401
    mlm,  # noqa: F401
    transfer,  # noqa: F401  (each registers its probe)
)
from analysis.methods.probes.base import PROBES, Probe, ProbeTarget

__all__ = ["PROBES", "Probe", "ProbeTarget"]
