"""Overload policy: when the worker falls behind its input, shed work in a stated way that
never changes what the models learn, and say so.

The signal is time behind the input: for each assigned partition with records waiting,
how old (by its Kafka timestamp) the record last processed is. A record count would mean
different things at different rates (5,000 records is 2.5 s here, minutes elsewhere).
Past ``enter_s`` the worker degrades; it recovers once it is under ``leave_s`` (hysteresis:
no flapping). Degraded, it keeps every output and every model learns every input, but:

- the audio path skips the sample-rate check (a second FFT at the source rate), and says so
  (``rate_mismatch`` is left out of the chunk's ``quality``);
- a tagger tags one window in ``WORKERS_TAGGER_DEGRADED_EVERY`` (its tags are not learnt).

``workers_degraded`` shows the state, ``workers_degraded_records_total`` what it touched.

>>> policy = OverloadPolicy(enter_s=30.0, leave_s=5.0)
>>> [policy.update(lag_s) for lag_s in (0.0, 45.0, 12.0, 2.0)]
[False, True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OverloadPolicy"]


@dataclass
class OverloadPolicy:
    enter_s: float = 30.0
    leave_s: float = 5.0
    degraded: bool = False

    def update(self, lag_s: float) -> bool:
        """The new state for how far behind its input (seconds) the worker is now."""
        if self.degraded and lag_s < self.leave_s:
            self.degraded = False
        elif not self.degraded and lag_s > self.enter_s:
            self.degraded = True
        return self.degraded
