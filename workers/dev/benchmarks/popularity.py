"""Popularity forecasts through the worker's own listening step, against trivial baselines.

Plays go through ``ListeningStep`` and the in-memory store (the same computation the Redis
store runs in Lua: the store contract tests compare them), one record per play, in event
time on one partition. For each track and window, the forecast scored is the last one the
worker published during the window (``predicted_plays_next``: the plays of the window
after it); it is compared with the plays that window got. Baselines, on the same pairs:

- **naive**: the next window = this window, complete (the model only saw it up to its last
  play, so this baseline knows more than the model did);
- **seasonal naive**: the next window = the same window a day before;
- **Holt-Winters** and **SNARIMAX**: River's ``time_series`` models per track (additive,
  daily season of 24 windows), learning each window as it closes.

Scored from the second day on (the seasonal baseline needs one). Generators: ``loadgen``'s
``TrackLaunches`` (the one the previous forecaster was tuned on), and two held out, written
apart from the forecaster and never used to choose anything: ``DailyCycles`` below and
``charts.ChartLoad``; and a third, ``releases.ReleaseWeek``, written before the forecaster's
second revision was frozen and first run on it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from workers.core.records import LISTENING_EVENTS, POPULARITY, Record
from workers.dev.charts import ChartLoad
from workers.dev.loadgen import TrackLaunches
from workers.dev.releases import ReleaseWeek
from workers.pipeline.listening import ListeningStep
from workers.state.memory import MemoryStore
from workers.state.protocol import StateLimits

__all__ = ["DailyCycles", "evaluate", "run_all", "table", "windows_to_plays"]

HOUR = 3_600_000
DAY = 24
START = 1_765_000_000_000 - 1_765_000_000_000 % (DAY * HOUR)
Row = tuple[str, int, int, int, int, int]


@dataclass
class DailyCycles:
    """A held-out catalogue: strong daily cycles with their own peak hour, weekly releases
    that open high and settle, and viral spikes (a share on social media) that decay
    within hours."""

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
                rows.append(("cycle", int(rng.poisson(rate)), 0, 0, 0, 0))
            out.append(rows)
        return out


def windows_to_plays(
    windows: list[list[Row]], *, seed: int, keep: float = 1.0
) -> Iterator[tuple[int, str]]:
    """Per-window counts as plays (ts, track) spread uniformly over each window, each play
    kept with probability ``keep`` (thinning keeps the shapes, at a smaller volume)."""
    rng = np.random.default_rng(seed)
    for w, rows in enumerate(windows):
        plays = [
            (START + w * HOUR + int(rng.integers(0, HOUR)), f"w:{t}")
            for t, row in enumerate(rows)
            for _ in range(int(rng.binomial(row[1], keep)))
        ]
        yield from sorted(plays)


async def _forecasts(
    plays: Iterator[tuple[int, str]], *, listeners: int, seed: int
) -> tuple[dict[tuple[str, int], float], dict[tuple[str, int], int], int]:
    """The worker's last forecast per (track, window), the plays per (track, window), and
    the first window."""
    rng = np.random.default_rng(seed)
    # one partition, read as fast as it goes: its time is the watermark from the start
    limits = StateLimits(watermark_idle_ms=0)
    step = ListeningStep(tenants=["eval"], store=MemoryStore(limits=limits), window_s=3600)
    forecasts: dict[tuple[str, int], float] = {}
    truth: dict[tuple[str, int], int] = defaultdict(int)
    first = None
    batch: list[Record] = []

    async def flush() -> None:
        for outcome in await step.process_batch(batch):
            for output in outcome.outputs:
                if output.topic == POPULARITY:
                    value: Any = output.value
                    w = int(value["window_start"]) // HOUR
                    forecasts[(str(value["track_id"]), w)] = float(value["predicted_plays_next"])
        batch.clear()

    for i, (ts, track) in enumerate(plays):
        window = ts // HOUR
        first = window if first is None else first
        truth[(track, window)] += 1
        user = f"u{int(rng.integers(0, listeners))}"
        body = {
            "event_id": f"e{i}",
            "tenant": "eval",
            "user_id": user,
            "track_id": track,
            "type": "play",
            "ts": ts,
            "ms_played": 200_000,
            "track_ms": 200_000,
        }
        batch.append(Record(LISTENING_EVENTS, 0, i, f"eval/{user}".encode(), orjson.dumps(body)))
        if len(batch) == 1000:
            await flush()
    if batch:
        await flush()
    return forecasts, dict(truth), int(first or 0)


def _river(kind: str) -> Callable[[float | None], float]:
    """A per-track River forecaster: call with the window that closed, get the next one."""
    from river import time_series

    model: Any
    if kind == "holt-winters":
        model = time_series.HoltWinters(  # type: ignore[no-untyped-call]
            alpha=0.3, beta=0.05, gamma=0.3, seasonality=DAY
        )
    else:
        model = time_series.SNARIMAX(p=2, d=0, q=0, m=DAY, sp=1, sd=0, sq=0)
    seen, last = [0], [0.0]

    def step(y: float | None) -> float:
        if y is not None:
            # River 0.26's Holt-Winters divides by the first season's level: shift by one
            model.learn_one(y + 1.0)
            seen[0] += 1
            last[0] = y
        if seen[0] < 2 * DAY:
            return last[0]
        return max(0.0, float(model.forecast(horizon=1)[0]) - 1.0)

    return step


def evaluate(plays: Iterator[tuple[int, str]], *, listeners: int = 2000) -> dict[str, Any]:
    forecasts, truth, first = asyncio.run(_forecasts(plays, listeners=listeners, seed=1))
    last = max(w for _, w in truth)
    tracks = sorted({t for t, _ in truth})
    errors: dict[str, list[float]] = {
        k: [] for k in ("model", "naive", "seasonal", "holt-winters", "snarimax")
    }
    per_track: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for track in tracks:
        rivers = {k: _river(k) for k in ("holt-winters", "snarimax")}
        ahead = dict.fromkeys(rivers, 0.0)
        for w in range(first, last):
            count = truth.get((track, w), 0)
            forecast = forecasts.get((track, w))
            if w >= first + DAY and forecast is not None:
                actual = truth.get((track, w + 1), 0)
                errors["model"].append(abs(forecast - actual))
                errors["naive"].append(abs(count - actual))
                errors["seasonal"].append(abs(truth.get((track, w + 1 - DAY), 0) - actual))
                for k in rivers:
                    errors[k].append(abs(ahead[k] - actual))
                per_track[track].append((errors["model"][-1], errors["naive"][-1]))
            for k, model in rivers.items():
                ahead[k] = model(float(count))
    mae = {k: float(np.mean(v)) for k, v in errors.items()}
    trivial = min(("naive", "seasonal"), key=lambda k: mae[k])
    worse = [np.mean([m for m, _ in e]) > np.mean([n for _, n in e]) for e in per_track.values()]
    return {
        "mae": mae,
        "best_trivial": trivial,
        "gain_vs_best_trivial": 1.0 - mae["model"] / mae[trivial],
        "tracks_worse_than_naive": float(np.mean(worse)),
        "predictions": len(errors["model"]),
    }


def populations(quick: bool) -> dict[str, Callable[[], Iterator[tuple[int, str]]]]:
    """Name -> plays, over 72 h (quick: 48 h of smaller catalogues, the same shapes)."""
    hours, small = (48, 1) if quick else (72, 0)
    launches, keep = (6, 0.02) if small else (30, 0.05)
    cycles, charts, per_hour = (20, 60, 150.0) if small else (200, 400, 1200.0)
    return {
        "launches (tuned on before)": lambda: windows_to_plays(
            TrackLaunches(tracks=launches, windows_n=hours, seed=3).windows(), seed=3, keep=keep
        ),
        "daily cycles (held out)": lambda: windows_to_plays(
            DailyCycles(tracks=cycles, windows_n=hours, seed=4).windows(), seed=4, keep=0.25
        ),
        "charts (held out)": lambda: ChartLoad(
            seed=11, tracks=charts, hours=hours, plays_per_hour=per_hour
        ).plays(),
        "releases (held out, third)": lambda: ReleaseWeek(
            seed=23, tracks=charts * 3 // 4, hours=hours, plays_per_hour=per_hour / (1 + 4 * small)
        ).plays(),
    }


def run_all(quick: bool) -> dict[str, dict[str, Any]]:
    return {name: evaluate(make()) for name, make in populations(quick).items()}


def table(results: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(
        title="Popularity through the listening step: MAE (plays per hour) against baselines",
        title_justify="left",
    )
    for col in (
        "generator",
        "worker",
        "naive",
        "seasonal naive",
        "Holt-Winters",
        "SNARIMAX",
        "gain vs best trivial",
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
            f"{m['snarimax']:.2f}",
            f"{r['gain_vs_best_trivial']:.1%} ({r['best_trivial']})",
            f"{r['tracks_worse_than_naive']:.0%}",
        )
    return out
