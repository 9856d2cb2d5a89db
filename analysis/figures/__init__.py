"""Figures as pure functions of stored results: the dashboard and the exporter show the same object.

One module per topic; every public figure function is re-exported here (`figures.metric_vs_sparsity(...)`).
"""

from .base import METHOD_ORDER, OKABE_ITO, layout, method_colour  # noqa: F401
from .pruning import (metric_vs_nonzero, metric_vs_sparsity, parameter_bars, sparsity_heatmap,  # noqa: F401
                      training_curves)
