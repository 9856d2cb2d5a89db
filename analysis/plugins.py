"""Import every module that registers an experiment, method, probe, study or command."""

from . import bench, child_tuning, commands, finetune, probes, pruning, studies  # noqa: F401
