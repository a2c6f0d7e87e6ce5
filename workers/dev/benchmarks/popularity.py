"""Popularity forecasts against three baselines, on the tuned-on generator and a held-out one.

Each hour, for each track: forecast the next window's plays, then learn the window that
closed (as the worker does). Baselines measured on the same windows:

- **naive**: next window = this window;
- **seasonal naive**: next window = the same hour of the previous day;
- **Holt-Winters**: River's ``time_series.HoltWinters`` per track (additive, daily season
  of 24 windows), learning each window as it closes; naive until it has two seasons.

Reported: MAE of each, the model's gain against the best baseline, and the share of
tracks where the model's MAE is worse than naive's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.core.listening_state import WindowCounts
from workers.core.models import PopularityModel
from workers.dev.loadgen import TrackLaunches

__all__ = ["DailyCycles", "evaluate", "run_all"]

Row = tuple[str, int, int, int, int, int]
DAY = 24


@dataclass
class DailyCycles:
    """A held-out catalogue: strong daily cycles with their own peak hour, weekly releases
    that open high and settle, and viral spikes (a share on social media) that decay
    within hours; listeners, skips, likes and shares drawn per track."""

    tracks: int = 300
    windows_n: int = 96
    seed: int = 0

    def windows(self) -> list[list[Row]]:
        rng = np.random.default_rng(10_000 + self.seed)
        base = rng.lognormal(np.log(25), 1.2, self.tracks)
        peak = rng.integers(0, DAY, self.tracks)
        depth = rng.uniform(0.2, 0.8, self.tracks)
        release = np.where(
            rng.random(self.tracks) < 0.2, rng.integers(0, self.windows_n, self.tracks), -1
        )
        spikes = {int(t): int(rng.integers(0, self.windows_n)) for t in rng.choice(self.tracks, 30)}
        skip_p = rng.uniform(0.1, 0.4, self.tracks)
        out = []
        for w in range(self.windows_n):
            rows: list[Row] = []
            for t in range(self.tracks):
                daily = 1.0 + depth[t] * np.cos(2 * np.pi * (w % DAY - peak[t]) / DAY)
                rate = base[t] * daily
                if release[t] >= 0:
                    rate = 0.0 if w < release[t] else rate * (1.0 + 4.0 * 0.9 ** (w - release[t]))
                if t in spikes and w >= spikes[t]:
                    rate += base[t] * 8.0 * 0.7 ** (w - spikes[t])
                plays = int(rng.poisson(rate))
                rows.append(
                    (
                        "cycle",
                        plays,
                        int(rng.binomial(plays, skip_p[t])),
                        int(rng.poisson(0.04 * plays)),
                        int(rng.poisson(0.008 * plays)),
                        int(rng.binomial(plays, 0.6)),
                    )
                )
            out.append(rows)
        return out


def _counts(row: Row) -> WindowCounts:
    return WindowCounts(plays=row[1], skips=row[2], likes=row[3], shares=row[4], listeners=row[5])


def _holt_winters() -> Callable[[float | None], float]:
    """A per-track River Holt-Winters: call with the window that closed, get the forecast."""
    from river import time_series

    model: Any = time_series.HoltWinters(  # type: ignore[no-untyped-call]
        alpha=0.3, beta=0.05, gamma=0.3, seasonality=DAY
    )
    seen = [0]
    last = [0.0]

    def step(y: float | None) -> float:
        if y is not None:
            # River 0.26 divides by the first season's level when it starts, even when
            # additive: a track with no plays yet would divide by zero, so shift by one
            model.learn_one(y + 1.0)
            seen[0] += 1
            last[0] = y
        if seen[0] < 2 * DAY:
            return last[0]
        return max(0.0, float(model.forecast(horizon=1)[0]) - 1.0)

    return step


def evaluate(windows: list[list[Row]]) -> dict[str, Any]:
    model = PopularityModel.create()
    n_tracks = len(windows[0])
    hw = [_holt_winters() for _ in range(n_tracks)]
    errors: dict[str, list[list[float]]] = {
        k: [[] for _ in range(n_tracks)] for k in ("model", "naive", "seasonal", "holt-winters")
    }
    for w in range(len(windows) - 1):
        for t in range(n_tracks):
            forecast_hw = hw[t](float(windows[w][t][1]))
            if w < DAY:  # from the second day on: the seasonal baseline has a day before
                continue
            current, previous = _counts(windows[w][t]), _counts(windows[w - 1][t])
            actual = windows[w + 1][t][1]
            predicted = model.predict_one(current=current, previous=previous, elapsed=1.0)
            errors["model"][t].append(abs(predicted - actual))
            errors["naive"][t].append(abs(current.plays - actual))
            errors["seasonal"][t].append(abs(windows[w + 1 - DAY][t][1] - actual))
            errors["holt-winters"][t].append(abs(forecast_hw - actual))
            model.learn_one(
                current=previous, previous=_counts(windows[w - 2][t]), next_plays=current.plays
            )
    mae = {k: float(np.mean([e for track in v for e in track])) for k, v in errors.items()}
    best = min((k for k in mae if k != "model"), key=lambda k: mae[k])
    worse = np.mean(
        [np.mean(m) > np.mean(n) for m, n in zip(errors["model"], errors["naive"], strict=True)]
    )
    return {
        "mae": mae,
        "best_baseline": best,
        "gain_vs_best": 1.0 - mae["model"] / mae[best],
        "tracks_worse_than_naive": float(worse),
        "predictions": sum(len(t) for t in errors["model"]),
    }


def run_all(quick: bool) -> dict[str, dict[str, Any]]:
    tracks = 60 if quick else 300
    return {
        "tuned-on (launches)": evaluate(
            TrackLaunches(tracks=tracks, windows_n=72, seed=3).windows()
        ),
        "daily cycles (held out)": evaluate(
            DailyCycles(tracks=tracks, windows_n=96, seed=4).windows()
        ),
    }


def table(results: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(
        title="Popularity: MAE (plays per window) against three baselines", title_justify="left"
    )
    for col in (
        "generator",
        "model",
        "naive",
        "seasonal naive",
        "Holt-Winters (River)",
        "gain vs best",
        "tracks worse than naive",
    ):
        out.add_column(col, justify="right")
    for name, r in results.items():
        m = r["mae"]
        out.add_row(
            name,
            f"{m['model']:.2f}",
            f"{m['naive']:.2f}",
            f"{m['seasonal']:.2f}",
            f"{m['holt-winters']:.2f}",
            f"{r['gain_vs_best']:.1%} ({r['best_baseline']})",
            f"{r['tracks_worse_than_naive']:.0%}",
        )
    return out
