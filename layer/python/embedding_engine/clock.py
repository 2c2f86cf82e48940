"""Durations in milliseconds, from `time.perf_counter()` readings: one way, everywhere."""

from __future__ import annotations

import time


def elapsed_ms(started: float, until: float | None = None, *, digits: int = 1) -> float:
    """Milliseconds from `started` to `until` (both `time.perf_counter()` readings; default: now)."""
    end = time.perf_counter() if until is None else until
    return round((end - started) * 1000, digits)
