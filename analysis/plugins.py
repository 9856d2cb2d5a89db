"""Import every module that registers an experiment, method, probe, study, figure or command."""

from . import (bench, child_tuning, commands, demo, export_cli, finetune, heads_cli, probes, pruning,  # noqa: F401
               reproduce, studies, workers)
