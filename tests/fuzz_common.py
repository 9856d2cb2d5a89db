"""Shared settings of the hypothesis fuzz suites (tests/test_fuzz_*.py): fixed, derandomised, CI-sized."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

# no "explain" phase: it re-runs a failing case hundreds of times and only adds commentary
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)


def fuzz_settings(max_examples: int, **extra) -> settings:
    """Reproducible settings: the same examples on every run (derandomize), no example database, no deadline."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None, phases=PHASES,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
                    **extra)
