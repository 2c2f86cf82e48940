"""How long an invocation may still run: Lambda's deadline, or the caller's patience if shorter."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Deadline:
    """A moment on the `time.monotonic()` clock by which the work must be done."""

    at: float

    @classmethod
    def never(cls) -> Deadline:
        return cls(math.inf)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def of_invocation(
        cls, context: Any, *, limit_seconds: float = math.inf, reserve_seconds: float = 0.0
    ) -> Deadline:
        """Lambda's deadline for this invocation (`context.get_remaining_time_in_millis()`), but no
        later than `limit_seconds` from now, less `reserve_seconds` kept to finish the reply. Without
        a Lambda context (the local server), `limit_seconds` alone."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        seconds = min(limit_seconds, remaining() / 1000) if callable(remaining) else limit_seconds
        return cls.after(seconds - reserve_seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed; infinite for `never()`)."""
        return self.at - time.monotonic()
