"""A held-out popularity load, written apart from the forecaster and never used to tune it
(docs/models.md): a catalogue with a daily cycle (quiet nights, evening peaks), tracks that
launch (a jump, then a decay over a day or two), tracks that fade, and noise, over 96 h.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["ChartLoad", "hour_plays"]

HOUR = 3_600_000


@dataclass
class ChartLoad:
    """Plays of a tenant's catalogue over ``hours`` with a daily cycle, launches and fades:
    (ts, track) in time order, for the popularity benchmark."""

    seed: int = 11
    tracks: int = 400
    hours: int = 96
    start_ts: int = 1_765_000_000_000
    plays_per_hour: float = 3_000.0

    def plays(self) -> Iterator[tuple[int, str]]:
        rng = np.random.default_rng(self.seed)
        base = 1.0 / np.arange(1, self.tracks + 1) ** 0.9
        base = base / base.sum()
        launch = {
            int(t): float(rng.uniform(6, self.hours - 24))
            for t in rng.choice(self.tracks, 12, replace=False)
        }
        fade = {
            int(t): float(rng.uniform(0.02, 0.06))
            for t in rng.choice(self.tracks, 25, replace=False)
        }
        # a daily cycle: quiet from 1 to 7, a morning rise, an evening peak (hour of day)
        night_and_morning = [0.35, 0.25, 0.2, 0.18, 0.2, 0.3, 0.5, 0.75, 0.95, 1.0, 1.0, 1.05]
        day_and_evening = [1.1, 1.05, 1.0, 1.0, 1.05, 1.15, 1.3, 1.45, 1.5, 1.4, 1.1, 0.7]
        cycle = np.array([*night_and_morning, *day_and_evening])
        phase = int(rng.integers(0, 24))
        for hour in range(self.hours):
            weights = base.copy()
            for track, at in launch.items():
                weights[track] = 0.0 if hour < at else base[0] * 0.6 * np.exp(-(hour - at) / 30.0)
            for track, rate in fade.items():
                weights[track] *= np.exp(-rate * hour)
            weights /= weights.sum()
            level = self.plays_per_hour * cycle[(hour + phase) % 24] * rng.uniform(0.9, 1.1)
            counts = rng.poisson(level * weights)
            yield from hour_plays(rng, self.start_ts + hour * HOUR, counts, "chart")


def hour_plays(
    rng: np.random.Generator, start: int, counts: np.ndarray, prefix: str
) -> list[tuple[int, str]]:
    """An hour's plays from per-track counts: (ts, f"{prefix}:{track}"), each at a uniform
    moment of the hour from ``start``, in time order."""
    plays = [
        (start + int(rng.integers(0, HOUR)), f"{prefix}:{track}")
        for track in np.flatnonzero(counts)
        for _ in range(int(counts[track]))
    ]
    return sorted(plays)
