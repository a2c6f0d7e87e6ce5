"""Overload policy: when the budget is at risk, degrade in a stated way, and say so.

The signal is consumer lag (records assigned to this worker and not processed yet).
Past ``enter`` records the worker degrades; it recovers once the lag falls below
``leave`` (hysteresis: no flapping). Degraded, it keeps every output but:

- models score without learning (learning is about half of a model step; the inputs
  skipped are not learnt later: a busy hour is not worth a growing backlog);
- the audio path skips the sample-rate mismatch check (a second FFT at the source rate).

``workers_degraded`` shows the state, ``workers_degraded_records_total`` what it touched.

>>> policy = OverloadPolicy(enter=1000, leave=200)
>>> [policy.update(lag) for lag in (0, 1500, 800, 150)]
[False, True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OverloadPolicy"]


@dataclass
class OverloadPolicy:
    enter: int = 5000
    leave: int = 1000
    degraded: bool = False

    def update(self, lag: int) -> bool:
        """The new state for the current total lag."""
        if self.degraded and lag < self.leave:
            self.degraded = False
        elif not self.degraded and lag > self.enter:
            self.degraded = True
        return self.degraded
