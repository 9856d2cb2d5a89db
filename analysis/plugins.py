"""Import every module that registers an experiment, method, probe, study, figure or command."""

from . import (bench, bench_dashboard, child_tuning, commands, demo, export_cli, finetune,  # noqa: F401
               heads_cli, latency, probes, pruning, reproduce, studies, workers)
from . import integrity, serve  # noqa: F401  (check-store, app)
