"""Keeps services running: a service that exits is started again after a growing back-off."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tools.stack.process import Service

__all__ = ["Backoff", "Supervisor"]


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``initial``, doubled after each quick death, up to ``maximum``.

    A service that ran ``healthy_after`` seconds before dying starts over at ``initial``.
    """

    initial: float = 1.0
    maximum: float = 30.0
    healthy_after: float = 60.0


@dataclass
class _State:
    started_at: float
    delay: float
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Call :meth:`poll` periodically; it restarts dead services and reports through ``log``."""

    services: Sequence[Service]
    log: Callable[[str], None]
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)

    def __post_init__(self) -> None:
        now = self.clock()
        self._states = {s.label: _State(now, self.backoff.initial) for s in self.services}

    def restarts(self, label: str) -> int:
        """How often the service ``label`` was restarted."""
        return self._states[label].restarts

    def poll(self) -> None:
        """Schedule a restart for each newly dead service; restart those whose delay passed."""
        now = self.clock()
        for service in self.services:
            state = self._states[service.label]
            if service.alive():
                continue
            if state.restart_at is None:
                if now - state.started_at >= self.backoff.healthy_after:
                    state.delay = self.backoff.initial
                state.restart_at = now + state.delay
                self.log(
                    f"{service.label} exited with {service.returncode}; "
                    f"restarting in {state.delay:g} s (log: {service.log_path})"
                )
                state.delay = min(state.delay * 2, self.backoff.maximum)
            elif now >= state.restart_at:
                service.start()
                state.restarts += 1
                state.started_at, state.restart_at = now, None
                self.log(f"{service.label} restarted (pid {service.pid}, restart {state.restarts})")
