"""The figures live latency is reported with."""

from __future__ import annotations

import statistics


def median_and_p95(values: list[float]) -> tuple[float, float] | None:
    """The figures live latency is reported with; None for no values."""
    if not values:
        return None
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]
    return statistics.median(values), p95
