"""The one clock: wall time for what gets stamped, monotonic time for intervals. The agents get the system clock;
tests and the evaluation inject a fixed one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall time, ms since the Unix epoch, UTC."""
        ...

    def monotonic_s(self) -> float:
        """Seconds on a clock that never goes back (for intervals only)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic_s(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


@dataclass
class FixedClock:
    """A clock that stands still until told to move."""

    at_ms: int = 0

    def now_ms(self) -> int:
        return self.at_ms

    def monotonic_s(self) -> float:
        return self.at_ms / 1000

    def advance(self, ms: int) -> None:
        self.at_ms += ms
