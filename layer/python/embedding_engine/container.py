"""What a container knows about its own life: when init began, how, and how many calls it took."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class ContainerState:
    """What this container knows about its own life: when init began and how many calls it took."""

    init_started: float
    initialization_type: str | None
    invocations: int = 0
    # Tells containers apart in warm-up replies (Lambda exposes no container id).
    container_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def init_cold_start(self) -> bool:
        """True when this container was started for a waiting request (Lambda's on-demand init),
        not ahead of time (provisioned concurrency, SnapStart)."""
        return self.initialization_type in (None, "on-demand")

    @property
    def cold_start(self) -> bool:
        """True for the invocation that waited for init: the first one after an on-demand init."""
        return self.invocations == 1 and self.init_cold_start

    @property
    def uptime_seconds(self) -> float:
        return round(time.perf_counter() - self.init_started, 3)

    def record_invocation(self) -> None:
        self.invocations += 1
