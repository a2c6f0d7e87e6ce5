"""Popularity outlook: plays of a track in the next event-time window, forecast per tenant.

The design is docs/models.md's ("Popularity"); what changed after its first held-out run
is marked (after looking) and listed there:

- **A daily profile per tenant** (``Profile.share``): the plays in each hour of the day per
  hour of it observed (after looking: it read hours not yet lived through as empty),
  against the day's, decayed with a half-life of 7 days, shrunk toward a flat day by one
  hour's worth.
- **Two levels per track** (``Series.rate``): plays per hour with each play divided by its
  hour's profile (so a night play counts as much as an evening one), decayed with a
  half-life of 24 h and (after looking) of 3 h, over the track's own life (from its first
  play, at least an hour).
- **A boost** for launches and spikes on the 24 h level: how far the last complete window
  ran above what the level and profile expected, halved for each hour between it and the
  window forecast.
- **Four experts** forecast the next window (``experts``): naive (this window so far, its
  rest at the last window's pace), seasonal naive (the same window a day before, from a
  ring of a day's windows per track; naive for a track younger than a day), the level
  (× the next window's profile × (1 + boost)) and the recent level (× the profile).
- **Hedge** (``Profile.learn``, ``weights``) weighs them on the delayed labels: each
  track's last forecast for a window is scored once the tenant's low watermark and the
  track's own plays have passed that window by a whole window, with a loss in Poisson
  deviations (``|forecast − actual| / √(m + 1)``, ``m`` the experts' mean forecast, at most
  ``LOSS_CAP``; after looking: the relative loss ``/ (actual + 1)`` it replaced let a
  track's quiet first hours outweigh its busy ones). The tenant keeps its experts' discounted
  losses; (after looking) each track runs its own Hedge over its last ~48 labels, at the
  learning rate of Hedge's bound over them (``√(8 ln 4 / 48)``), starting from 12 labels'
  worth of the tenant's mean loss, so a new track starts with what works for the tenant
  and a track unlike the others finds its own expert within a day. The forecast published
  is the weighted mean of the four.

Sums decay by *forward decay* (Cormode et al.): a play at ``ts`` adds ``2^((ts − origin) /
half-life)``, read at ``now`` by multiplying by ``2^(−(now − origin) / half-life)``, so the
order plays arrive in does not change them (a backlog gives the answers live traffic gives);
the origin moves forward by 256 half-lives when a sum would grow past ``2^256``.

``state/lua/forecaster.lua`` is the same computation in Lua, on the same hash fields; the
store contract tests compare the two stores event by event.

>>> profile, series = Profile(), Series()
>>> for hour in range(24):
...     for _ in range(2 if hour >= 18 else 1):  # evenings play twice as much
...         ts = hour * HOUR_MS
...         profile.add(ts)
...         series.add(ts, profile.share(ts // HOUR_MS % 24, ts), window=hour, day_windows=24)
>>> round(profile.share(20, 24 * HOUR_MS) / profile.share(3, 24 * HOUR_MS), 2)
1.43
>>> naive, seasonal, level, recent = experts(
...     profile, series, ts=24 * HOUR_MS - 1, window=23, window_ms=HOUR_MS, current=2, previous=2
... )
>>> naive, seasonal  # a day old: the same hour yesterday had one play
(2.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workers.core.models.protocol import ModelQuality

__all__ = [
    "ETA",
    "EXPERTS",
    "HOUR_MS",
    "LABELS_BEHIND",
    "LOSS_CAP",
    "PRIOR_LABELS",
    "QUALITY_WINDOW",
    "VERSION",
    "PopularityModel",
    "Profile",
    "Series",
    "combine",
    "day_windows",
    "experts",
    "weights",
]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PROFILE_HALF_LIFE_MS = 7 * DAY_MS
LEVEL_HALF_LIFE_MS = DAY_MS
RECENT_HALF_LIFE_MS = 3 * HOUR_MS
#: half-lives of the recent level a forward-decayed sum grows before its origin moves on
RESCALE = 256
EXPERTS = ("naive", "seasonal", "level", "recent")
N = len(EXPERTS)
#: a track's Hedge remembers its last ~48 labels (two days of hours), at the learning rate
#: of Hedge's bound over them, and starts from the tenant's experience (its mean loss per
#: label), worth this many of the track's own labels
TRACK_FORGETTING = 1.0 - 1.0 / 48.0
ETA = math.sqrt(8.0 * math.log(N) / 48.0)
PRIOR_LABELS = 12.0
#: a label's loss: the error in the Poisson deviations of the experts' mean forecast
#: (``|f − a| / √(mean + 1)``), at most this many: one launch hour moves the weights by at
#: most e^(−ETA·LOSS_CAP) between experts
LOSS_CAP = 3.0
QUALITY_WINDOW = 1000
#: the windows a track keeps below the watermark (KEPT_WINDOWS): older forecasts are gone
LABELS_BEHIND = 4
VERSION = "hedge-profile-v2"


def _p2(x: float) -> float:
    """2 to the ``x``, bounded above (an event dated years from a sum's origin)."""
    return math.pow(2.0, min(x, 1000.0))


def _hour(ts: int) -> int:
    return (ts // HOUR_MS) % 24


def day_windows(window_ms: int) -> int:
    """Windows in a day when they tile it in at most 24 (the seasonal ring's size), else 0:
    no seasonal expert (it is then the naive one)."""
    if window_ms < HOUR_MS or DAY_MS % window_ms:
        return 0
    return DAY_MS // window_ms


@dataclass
class Profile:
    """A tenant's daily profile and its experts' Hedge losses and quality (the tenant's
    forecaster hash: ``po``, ``p0``…``p23``, ``l1``…``l3``, ``trained``, ``mae``,
    ``naive_mae``, ``seasonal_mae``)."""

    origin: int = -1
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)
    losses: list[float] = field(default_factory=lambda: [0.0] * N)
    trained: int = 0
    mae: float = 0.0
    naive_mae: float = 0.0
    seasonal_mae: float = 0.0

    def add(self, ts: int) -> None:
        """One play at ``ts``."""
        if self.origin < 0:
            self.origin = ts
        elif ts - self.origin > RESCALE * PROFILE_HALF_LIFE_MS:
            self.hours = [v * _p2(-RESCALE) for v in self.hours]
            self.origin = self.origin + RESCALE * PROFILE_HALF_LIFE_MS
        h = _hour(ts)
        self.hours[h] = self.hours[h] + _p2((ts - self.origin) / PROFILE_HALF_LIFE_MS)

    def exposure(self, hour: int, now: int) -> float:
        """Hours of slot ``hour`` observed from the profile's origin to ``now``, each
        occurrence decayed from its start (a geometric sum, without a loop)."""
        if self.origin < 0 or now <= self.origin:
            return 0.0
        first = self.origin
        last_start = now - (now - hour * HOUR_MS) % DAY_MS
        first_start = first - (first - hour * HOUR_MS) % DAY_MS
        if first_start + HOUR_MS <= first:
            first_start = first_start + DAY_MS
        if first_start > last_start:
            return 0.0
        k = (last_start - first_start) // DAY_MS
        decay = _p2(-(now - last_start) / PROFILE_HALF_LIFE_MS)
        if k == 0:
            return (min(now, last_start + HOUR_MS) - max(first, last_start)) / HOUR_MS * decay
        r = _p2(-DAY_MS / PROFILE_HALF_LIFE_MS)
        seen_last = min(1.0, (now - last_start) / HOUR_MS)
        seen_first = (first_start + HOUR_MS - max(first, first_start)) / HOUR_MS
        total = (1.0 - math.pow(r, k + 1)) / (1.0 - r) - (1.0 - seen_last)
        return (total - (1.0 - seen_first) * math.pow(r, k)) * decay

    def share(self, hour: int, now: int) -> float:
        """The hour's plays per observed hour against the day's, 1 for an average hour
        (an hour not observed yet is average; one observed briefly, nearly so)."""
        if self.origin < 0:
            return 1.0
        now = max(now, self.origin)  # never read before the sum's origin
        f = _p2(-(now - self.origin) / PROFILE_HALF_LIFE_MS)
        total = 0.0
        for v in self.hours:
            total = total + v
        observed = PROFILE_HALF_LIFE_MS / HOUR_MS / math.log(2.0) * (1.0 - f)
        if total <= 0.0 or observed <= 0.0:
            return 1.0
        mean = total * f / observed
        return (self.hours[hour] * f + mean) / (self.exposure(hour, now) + 1.0) / mean

    def learn(
        self, series: Series, forecast: tuple[float, ...], actual: int, forgetting: float
    ) -> None:
        """One delayed label of ``series``' track: the experts' forecast for a window, and
        its plays; the tenant's and the track's losses learn it."""
        mixed = combine(forecast, weights(self, series, forgetting))
        self.trained += 1
        n = min(self.trained, QUALITY_WINDOW)
        self.mae = self.mae + (abs(mixed - actual) - self.mae) / n
        self.naive_mae = self.naive_mae + (abs(forecast[0] - actual) - self.naive_mae) / n
        self.seasonal_mae = self.seasonal_mae + (abs(forecast[1] - actual) - self.seasonal_mae) / n
        scale = 0.0
        for f in forecast:
            scale = scale + f
        scale = math.sqrt(scale / N + 1.0)
        for i in range(N):
            loss = min(LOSS_CAP, abs(forecast[i] - actual) / scale)
            self.losses[i] = forgetting * self.losses[i] + loss
            series.losses[i] = TRACK_FORGETTING * series.losses[i] + loss


@dataclass
class Series:
    """A track's levels, seasonal ring and Hedge losses (fields of the track's hash: ``pf``
    its first play, ``lo`` the levels' origin, ``lv`` and ``lr`` their sums, ``q{slot}`` =
    ``"window:plays"``, ``k1``…``k4`` the losses)."""

    first: int = -1
    origin: int = -1
    level: float = 0.0
    recent: float = 0.0
    ring: dict[int, tuple[int, int]] = field(default_factory=dict)
    losses: list[float] = field(default_factory=lambda: [0.0] * N)

    def add(self, ts: int, share: float, *, window: int, day_windows: int) -> None:
        """One play at ``ts`` in ``window``, its hour's ``share`` of the day's plays."""
        self.first = ts if self.first < 0 else min(self.first, ts)
        if self.origin < 0:
            self.origin = ts
        elif ts - self.origin > RESCALE * RECENT_HALF_LIFE_MS:
            self.level = self.level * _p2(-RESCALE * RECENT_HALF_LIFE_MS / LEVEL_HALF_LIFE_MS)
            self.recent = self.recent * _p2(-RESCALE)
            self.origin = self.origin + RESCALE * RECENT_HALF_LIFE_MS
        self.level = self.level + _p2((ts - self.origin) / LEVEL_HALF_LIFE_MS) / share
        self.recent = self.recent + _p2((ts - self.origin) / RECENT_HALF_LIFE_MS) / share
        if day_windows:
            slot = window % day_windows
            w, n = self.ring.get(slot, (-1, 0))
            if w == window:
                self.ring[slot] = (window, n + 1)
            elif w < window:
                self.ring[slot] = (window, 1)

    def rate(self, now: int, *, recent: bool = False) -> float:
        """Plays per average hour as of ``now``, over the last day or (``recent``) hours."""
        if self.origin < 0:
            return 0.0
        now = max(now, self.origin)
        half = RECENT_HALF_LIFE_MS if recent else LEVEL_HALF_LIFE_MS
        life = 1.0 - _p2(-(now - self.first) / half)
        exposure = max(1.0, half / HOUR_MS / math.log(2.0) * life)
        total = self.recent if recent else self.level
        return total * _p2(-(now - self.origin) / half) / exposure


def experts(
    profile: Profile,
    series: Series,
    *,
    ts: int,
    window: int,
    window_ms: int,
    current: int,
    previous: int,
) -> tuple[float, ...]:
    """Naive, seasonal naive, level and recent level forecasts of the plays in
    ``window + 1``, made at ``ts`` in ``window`` with ``current`` plays so far and
    ``previous`` in the window before."""
    elapsed = min(1.0, max(0.0, (ts - window * window_ms + 1) / window_ms))
    naive = current + previous * (1.0 - elapsed)
    nxt = window + 1
    seasonal = naive
    days = day_windows(window_ms)
    if days:
        w, n = series.ring.get(nxt % days, (-1, 0))
        if w == nxt - days:
            seasonal = float(n)
        elif 0 <= series.first <= (nxt - days) * window_ms:
            seasonal = 0.0
    scale = window_ms / HOUR_MS
    rate = series.rate(ts)
    expected = rate * profile.share(_hour((window - 1) * window_ms), ts) * scale
    boost = max(0.0, (previous + 1.0) / (expected + 1.0) - 1.0) * math.pow(0.5, scale)
    ahead = profile.share(_hour(nxt * window_ms), ts) * scale
    level = rate * ahead * (1.0 + boost)
    recent = series.rate(ts, recent=True) * ahead
    return naive, seasonal, level, recent


def weights(profile: Profile, series: Series, forgetting: float) -> tuple[float, ...]:
    """Hedge's weights for a track: its own discounted losses, after ``PRIOR_LABELS`` labels'
    worth of the tenant's mean loss per label."""
    seen = float(profile.trained)
    if profile.trained > 0 and forgetting < 1.0:
        seen = (1.0 - math.pow(forgetting, profile.trained)) / (1.0 - forgetting)
    logs = []
    for i in range(N):
        prior = PRIOR_LABELS * profile.losses[i] / seen if seen > 0.0 else 0.0
        logs.append(-ETA * (prior + series.losses[i]))
    high = max(logs)
    raw = [math.exp(v - high) for v in logs]
    total = 0.0
    for r in raw:
        total = total + r
    return tuple(r / total for r in raw)


def combine(forecast: tuple[float, ...], w: tuple[float, ...]) -> float:
    """The published forecast: the experts' forecasts weighted."""
    out = 0.0
    for f, v in zip(forecast, w, strict=True):
        out = out + f * v
    return out


@dataclass(frozen=True, slots=True)
class PopularityModel:
    """A tenant's forecaster as the store returned it with an event: the experts' forecasts
    for the event's track, their weights and the labels' quality."""

    forecast: tuple[float, ...] = (0.0,) * N
    weights: tuple[float, ...] = (1 / N,) * N
    trained: int = 0
    mae: float = 0.0
    naive_mae: float = 0.0
    seasonal_mae: float = 0.0
    version: str = VERSION

    def predict(self) -> float:
        return max(0.0, combine(self.forecast, self.weights))

    def explain_one(self, x: object = None) -> list[str]:
        """The experts, the heaviest first."""
        ranked = sorted(zip(EXPERTS, self.weights, strict=True), key=lambda kv: -kv[1])
        return [name for name, _ in ranked]

    def quality(self) -> ModelQuality:
        trained = self.trained > 0
        return ModelQuality(
            inputs=self.trained,
            drifts=0,
            mae=self.mae if trained else None,
            naive_mae=self.naive_mae if trained else None,
            seasonal_mae=self.seasonal_mae if trained else None,
        )
