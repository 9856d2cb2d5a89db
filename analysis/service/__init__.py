"""The service: what both shells (the dashboard, the CLI) ask of the backend, one module per concern.

- `service.runs`     the store and the queue: list runs, launch, re-run, cancel, delete
- `service.studies`  study views: the pruning rows with their dense reference and floor
- `service.compare`  models side by side: paired tests, flipped examples, config differences
- `service.explain`  head importance, attention maps and attributions of a stored model
- `service.forms`    the launch forms: experiment kinds, their fields and defaults, from the config classes

Pages import the service and `analysis.figures`, nothing else (tests/test_layers.py checks).
"""
