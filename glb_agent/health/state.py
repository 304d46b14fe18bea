"""Per-backend rise/fall state machine with flap damping; pure logic, no I/O, no clock.

Kept free of sockets and asyncio so every rule can be tested with synthetic timestamps.

Rules (also in docs/health.md):

* A healthy backend becomes unhealthy after ``fall`` consecutive failed probes. Going down
  is never delayed: steering traffic away from a broken proxy is always safe.
* An unhealthy backend becomes healthy after ``rise`` consecutive successful probes --
  unless it is *damped*.
* Damping: a backend that changed state ``changes`` or more times within the last
  ``window`` seconds is damped and needs ``rise * factor`` consecutive successes to come
  back. Every table swap moves connections of the flapping proxy's rows to the secondary,
  so a proxy that keeps bouncing would otherwise churn the fleet every few seconds; the
  damping expires by itself once the old changes age out of the window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Damping:
    """When a backend counts as flapping and how much longer it then takes to come back."""

    window: float = 60.0  # seconds of state-change history considered
    changes: int = 4  # changes within the window that make a backend damped
    factor: int = 5  # a damped backend needs rise * factor successes

    def __post_init__(self) -> None:
        if self.window <= 0 or self.changes < 1 or self.factor < 1:
            raise ValueError("damping needs window > 0, changes >= 1 and factor >= 1")


@dataclass
class BackendState:
    """The verdict for one (service, backend) and the counters that lead to the next one."""

    rise: int
    fall: int
    healthy: bool = True
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    since: float = 0.0  # when the current verdict started (caller's clock)
    changes: deque[float] = field(default_factory=deque)  # times of past verdict changes
    last_error: str = ""

    def _expire(self, now: float, damping: Damping) -> None:
        while self.changes and self.changes[0] <= now - damping.window:
            self.changes.popleft()

    def damped(self, now: float, damping: Damping) -> bool:
        """True when recent flapping raises the successes needed to come back."""
        self._expire(now, damping)
        return len(self.changes) >= damping.changes

    def needed_rises(self, now: float, damping: Damping) -> int:
        return self.rise * damping.factor if self.damped(now, damping) else self.rise

    def observe(self, ok: bool, now: float, damping: Damping, error: str = "") -> bool:
        """Account one probe result at time ``now``; True if the verdict changed."""
        self.last_error = "" if ok else error
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.healthy and self.successes >= self.needed_rises(now, damping):
                return self._flip(True, now, damping)
        else:
            self.failures += 1
            self.successes = 0
            if self.healthy and self.failures >= self.fall:
                return self._flip(False, now, damping)
        return False

    def _flip(self, healthy: bool, now: float, damping: Damping) -> bool:
        self.healthy = healthy
        self.since = now
        self.successes = self.failures = 0
        self.changes.append(now)
        self._expire(now, damping)
        return True
