"""The service: what both shells (the dashboard, the CLI) ask of the backend, one module per concern.

- `service.runs`     the store and the queue: list runs, launch, re-run, cancel, delete
- `service.studies`  study views: the pruning rows with their dense reference and floor
- `service.compare`  models side by side: paired tests, flipped examples, config differences
- `service.explain`  head importance, attention maps and attributions of a stored model
- `service.forms`    the launch forms: experiment kinds, their fields and defaults, from the config classes
- `service.catalog`  what can be run: kinds, methods and their typed options, datasets (the CLI's flags)
- `service.reports`  measurements of stored runs: latency, reproducing a run

Pages import the service and `analysis.figures`; commands import the service, `analysis.core`, the figures and the
benchmarks (tests/test_layers.py checks both).
"""
