"""Import every module that registers an experiment, method, probe, study, figure or command."""

from analysis.bench import core as bench
from analysis.bench import dashboard as bench_dashboard
from analysis.methods.finetuning import child_tuning
from analysis.cli import commands
from analysis.studies import quick_tour as demo
from analysis.cli import figures as export_cli
from analysis.runs import finetune
from analysis.cli import heads as heads_cli
from analysis.reports import latency
from analysis.methods import probes
from analysis.methods import pruning
from analysis.cli import reproduce
from analysis import studies
from analysis.runs import queue as workers
from analysis.store import integrity
from analysis.cli import app as serve  # noqa: F401  (check-store, app)
