"""A third held-out popularity load, written before the forecaster's next revision and run
only once that revision was frozen (docs/models.md, BENCHMARKS.md): a release week on a
platform whose audience spans time zones.

- The tenant's day has two peaks (a morning commute and a late evening), and the third day
  is a weekend day: busier, and later.
- A third of the tracks are regional: their audience lives six to ten hours from the rest,
  so their daily cycle peaks at other hours than the tenant's.
- Playlist placements: a track's rate steps up two- to fourfold for 12-36 hours, then back.
- Friday releases: nothing before midnight, then a high start that settles to a plateau.
- One viral track per run: a logistic rise to twenty times its rate over half a day, then a
  slow decline.
- Hour-to-hour noise beyond Poisson's (a gamma-distributed rate: negative binomial counts).

>>> plays = list(ReleaseWeek(tracks=20, hours=40, plays_per_hour=50.0).plays())
>>> all(a[0] <= b[0] for a, b in zip(plays, plays[1:]))
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from workers.dev.charts import hour_plays

__all__ = ["ReleaseWeek"]

HOUR = 3_600_000


def _day(hour_of_day: np.ndarray, weekend: bool) -> np.ndarray:
    """The tenant's activity at each hour of the day: a morning and an evening peak."""
    shift = 1.5 if weekend else 0.0
    morning = np.exp(-0.5 * ((hour_of_day - 8.0 - shift) / 1.5) ** 2)
    evening = np.exp(-0.5 * ((hour_of_day - 21.0 - shift / 2) / 2.5) ** 2)
    return 0.15 + 0.7 * morning + 1.0 * evening


@dataclass
class ReleaseWeek:
    """Plays of a tenant's catalogue over ``hours``: (ts, track) in time order."""

    seed: int = 23
    tracks: int = 300
    hours: int = 72
    start_ts: int = 1_765_000_000_000 - 1_765_000_000_000 % (24 * HOUR)
    plays_per_hour: float = 1_500.0

    def plays(self) -> Iterator[tuple[int, str]]:
        rng = np.random.default_rng(self.seed)
        n = self.tracks
        base = rng.lognormal(0.0, 1.3, n)
        base = base / base.sum()
        offset = np.where(rng.random(n) < 1 / 3, rng.uniform(6, 10, n), 0.0)
        placed = rng.choice(n, min(n, 20), replace=False)
        placements = {
            int(t): (
                float(rng.uniform(0, self.hours)),
                float(rng.uniform(12, 36)),
                float(rng.uniform(2, 4)),
            )
            for t in placed
        }
        friday = float(rng.integers(20, 30))  # the release hour: midnight of a day
        released = {int(t) for t in rng.choice(n, min(n, 15), replace=False)}
        viral, viral_at = int(rng.integers(0, n)), float(rng.uniform(12, self.hours - 24))
        for hour in range(self.hours):
            weekend = 48 <= hour < 72
            hod = (hour + offset) % 24
            volume = 1.3 if weekend else 1.0
            rate = self.plays_per_hour * volume * base * _day(hod, weekend)
            for t, (at, lasting, lift) in placements.items():
                if at <= hour < at + lasting:
                    rate[t] *= lift
            for t in released:
                since = hour - friday
                rate[t] = 0.0 if since < 0 else rate[t] * (2.0 + 6.0 * 0.5 ** (since / 18.0))
            rise = 20.0 / (1.0 + np.exp(-(hour - viral_at) / 2.5))
            decline = 0.5 ** (max(0.0, hour - viral_at - 6.0) / 30.0)
            rate[viral] *= 1.0 + rise * decline
            counts = rng.poisson(rng.gamma(20.0, rate / 20.0))
            yield from hour_plays(rng, self.start_ts + hour * HOUR, counts, "rel")
