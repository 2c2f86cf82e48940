"""This process's memory: which malloc serves it, and how much it holds (Linux /proc)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def allocator() -> str:
    """ "jemalloc (<its MALLOC_CONF>)" when preloaded, as the image and `make run` do (glibc's malloc
    fragments under varied traffic and the resident size keeps growing); else "glibc". Fixed when the
    process starts, so read once (/proc/self/maps runs to some 180 KB once torch is loaded)."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    if "libjemalloc" in maps:
        conf = os.environ.get("MALLOC_CONF", "")
        return f"jemalloc ({conf})" if conf else "jemalloc"
    tuned = sorted(name for name in os.environ if name.startswith("MALLOC_") and name.endswith("_"))
    return "glibc" + (f" ({', '.join(tuned)})" if tuned else "")


def resident_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident set size now (`rss_mb`, VmRSS) and at its peak so far (`peak_mb`, VmHWM), in MB, of
    this process or of process `pid`; {} where /proc cannot tell."""
    values: dict[str, float] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    except OSError:
        return values
    names = {"VmRSS": "rss_mb", "VmHWM": "peak_mb"}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in names:
            values[names[name]] = round(int(rest.split()[0]) / 1024, 1)
    return values
