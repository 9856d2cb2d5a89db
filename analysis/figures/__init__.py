"""Figures as pure functions of stored results: the dashboard and the exporter show the same object.

One module per topic; every public figure function is re-exported here (`figures.metric_vs_sparsity(...)`).
"""

from analysis.figures import pruning_named  # noqa: F401,E402  (registers the pruning figures by name)
from analysis.figures.base import OKABE_ITO, layout, method_colour, method_order  # noqa: F401
from analysis.figures.child_tuning import (  # noqa: F401
    child_share_per_layer,
    fisher_heatmap,
    fisher_per_layer,
    mask_overlap_heatmap,
    study_differences,
    study_table,
    transfer_table,
    weight_change_per_layer,
)
from analysis.figures.compare import metrics_side_by_side, paired_differences  # noqa: F401,E402
from analysis.figures.heads import (  # noqa: F401
    attention_heatmap,
    attention_side_by_side,
    attribution_bars,
    attribution_strip,
    head_importance_heatmap,
    head_importance_panels,
)
from analysis.figures.probes import cka_lines, layer_probe_lines, not_applicable, probe_bars, probe_table  # noqa: F401,E402
from analysis.figures.pruning import (  # noqa: F401
    latency_vs_metric,
    metric_vs_nonzero,
    metric_vs_sparsity,
    parameter_bars,
    sparsity_heatmap,
    training_curves,
)
from analysis.figures.registry import FIGURES, FigureResult, NotApplicable, build_figure, register_figure  # noqa: F401
from analysis.figures.scale import curve_table, scale_curves, scale_gap, scale_table  # noqa: F401,E402
from analysis.figures.whatif import layer_sparsity_bars, whatif_vs_retrained  # noqa: F401,E402
