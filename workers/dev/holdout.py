"""Held-out listening populations: written apart from the model and never used to tune it
(docs/models.md). Each runs 72 h or more of event time and has every kind of farm the
models are meant to catch, beside the people most easily mistaken for one.

- ``MarketPopulation``: a marketplace-sized catalogue of 30,000 tracks. People with their own
  diurnal rhythm (a morning or an evening peak, 6-9 h of sleep), skip rates drawn per person,
  skips that last 3-60 s. Hard negatives: power listeners (15-17 h a day, full plays), album
  loopers (one album over and over for hours), skip-heavy discoverers (70 % skips, many of
  them 30-45 s in), night owls, people falling asleep to one ambient track. Farms: blatant
  (around the clock, 4 tracks, 30-35 s), a thin farm (60 accounts, 12-25 listens a day at
  human hours, half of them on 15 targets ended 31-45 s in), a synchronised farm (30
  accounts, each looking human: full plays at human hours, but every session all of them
  play the same few targets within three minutes of each other), catalogue stuffers (10
  accounts looping a 40-track playlist holding 8 targets, 20 h a day, full plays).
- ``radio.RadioPopulation`` (its own module, on the same base): listening by stations
  (genre pools played in shuffled order), commute and office-hours habits. Hard negatives:
  office workers on one station for 8 h, children looping one song, DJs previewing tracks
  30-45 s each in the evening, shift workers awake at night. Farms: blatant loops of one
  track at 31 s, a farm spread over 100 accounts (5 listens a day each, on 50 targets),
  "listening parties" (20 accounts starting the same targets in the same minute two or
  three times a day, full plays), and 12 stuffer accounts on a 24 h station with targets
  slipped in.

``truth()`` names every account's kind and farm; ``pushed()`` the tracks farms push.

The popularity load held out beside them is ``charts.ChartLoad``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from workers.dev.loadgen import ListenEvent
from workers.dev.populations import Account

__all__ = ["MarketPopulation"]

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass
class _Held:
    """Accounts, each a generator of (ts, track, kind, ms_played); merged in time order."""

    tenant: str
    seed: int
    hours: int = 72
    start_ts: int = 1_765_000_000_000
    catalogue: int = 30_000
    rng: np.random.Generator = field(init=False, repr=False)
    accounts: list[Account] = field(init=False, default_factory=list)
    _plans: list[Iterator[tuple[int, int, str, int]]] = field(init=False, default_factory=list)
    _pushed: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        weights = 1.0 / np.arange(1, self.catalogue + 1) ** 0.85
        self._cdf = np.cumsum(weights / weights.sum())
        self._length = np.clip(self.rng.normal(215_000, 50_000, self.catalogue), 90_000, 600_000)
        self._length = self._length.astype(int)
        self.populate()

    def populate(self) -> None:
        raise NotImplementedError

    def hit(self) -> int:
        return min(self.catalogue - 1, int(np.searchsorted(self._cdf, self.rng.random())))

    def length(self, track: int) -> int:
        return int(self._length[track])

    def add(self, user: str, kind: str, bot: bool, plan: Iterator[tuple[int, int, str, int]],
            farm: str | None = None) -> None:  # fmt: skip
        self.accounts.append(Account(user, kind, bot, farm))
        self._plans.append(plan)

    def truth(self) -> dict[str, Account]:
        return {a.user: a for a in self.accounts}

    def pushed(self) -> set[str]:
        return {f"trk:{t}" for t in self._pushed}

    def end(self) -> int:
        return self.start_ts + self.hours * HOUR

    def events(self) -> Iterator[ListenEvent]:
        heap: list[tuple[int, int, int, str, int]] = []
        for i, plan in enumerate(self._plans):
            for item in plan:
                heapq.heappush(heap, (item[0], i, item[1], item[2], item[3]))
                break
        serial = 0
        while heap:
            ts, i, track, kind, played = heapq.heappop(heap)
            if ts >= self.end():
                continue
            serial += 1
            account = self.accounts[i]
            body: dict[str, object] = {
                "event_id": f"{self.tenant}-{self.seed}-{serial}",
                "tenant": self.tenant,
                "user_id": account.user,
                "track_id": f"trk:{track}",
                "type": kind,
                "ts": ts,
            }
            if kind in ("play", "skip"):
                body["ms_played"] = played
                body["track_ms"] = self.length(track)
            yield ListenEvent(body, account.is_bot)
            for item in self._plans[i]:
                heapq.heappush(heap, (item[0], i, item[1], item[2], item[3]))
                break

    # --- shared habits ------------------------------------------------------------------

    def day_hour(self, ts: int) -> float:
        return ((ts - self.start_ts) % DAY) / HOUR

    def next_awake(self, ts: int, wake: float, sleep: float) -> int:
        """``ts`` if within [wake, sleep) of its day (hours, sleep may pass midnight), else
        the next wake time."""
        hour = ((ts - self.start_ts) % DAY) / HOUR
        span = (sleep - wake) % 24
        if (hour - wake) % 24 < span:
            return ts
        return ts + int(((wake - hour) % 24) * HOUR)

    def listen(self, track: int, skip_rate: float, skip_scale: float) -> tuple[str, int]:
        rng = self.rng
        full = self.length(track)
        if rng.random() < skip_rate:
            return "skip", min(full, int(rng.lognormal(np.log(skip_scale), 0.6)))
        return "play", int(full * rng.uniform(0.7, 1.0))


@dataclass
class MarketPopulation(_Held):
    people: int = 1500

    def populate(self) -> None:
        rng = self.rng
        n = self.people
        for i in range(n):
            roll = rng.random()
            kind = (
                "power-listener" if roll < 0.04
                else "album-looper" if roll < 0.08
                else "discoverer" if roll < 0.12
                else "night-owl" if roll < 0.17
                else "ambient-sleeper" if roll < 0.20
                else "person"
            )  # fmt: skip
            self.add(f"m{self.seed}-{i}", kind, False, self._human(kind))
        targets_thin = list(rng.choice(self.catalogue, 15, replace=False))
        targets_sync = list(rng.choice(self.catalogue, 10, replace=False))
        playlist_targets = list(rng.choice(self.catalogue, 8, replace=False))
        self._pushed |= {int(t) for t in (*targets_thin, *targets_sync, *playlist_targets)}
        for i in range(4):
            tracks = list(rng.choice(self.catalogue, 4, replace=False))
            self._pushed |= {int(t) for t in tracks}
            self.add(f"mb{self.seed}-{i}", "blatant", True, self._blatant(tracks), "blatant")
        for i in range(60):
            self.add(f"mt{self.seed}-{i}", "thin-farm", True, self._thin(targets_thin), "thin-farm")
        party = _Party(self, targets_sync, members=30)
        for i in range(30):
            self.add(f"ms{self.seed}-{i}", "sync-farm", True, party.member(i), "sync-farm")
        playlist = [self.hit() for _ in range(32)] + [int(t) for t in playlist_targets]
        rng.shuffle(playlist)
        for i in range(10):
            self.add(f"mp{self.seed}-{i}", "stuffer", True, self._stuffer(playlist), "stuffer")

    def _human(self, kind: str) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        wake = float(rng.uniform(6, 9.5)) if kind != "night-owl" else float(rng.uniform(20, 23))
        awake_h = float(rng.uniform(15, 18)) if kind != "power-listener" else 17.5
        sleep = (wake + awake_h) % 24
        taste = [self.hit() for _ in range(int(rng.integers(30, 400)))]
        album = [
            int(t) for t in rng.choice(self.catalogue, int(rng.integers(9, 15)), replace=False)
        ]
        ambient = self.hit()
        skip_rate = float(rng.beta(2, 6)) if kind != "discoverer" else 0.7
        skip_scale = 18_000.0 if kind != "discoverer" else 34_000.0
        daily = float(rng.lognormal(np.log(2.0), 0.6))  # hours of listening a day
        ts = self.start_ts + int(rng.integers(0, DAY))
        while ts < self.end():
            if kind == "ambient-sleeper":
                night = self.next_awake(ts, sleep, wake)
                if night == ts:  # asleep: the ambient track on repeat
                    yield ts, ambient, "play", self.length(ambient)
                    ts += self.length(ambient) + int(rng.integers(0, 3_000))
                    continue
            ts = self.next_awake(ts, wake, sleep)
            if kind == "power-listener":
                session = int(rng.uniform(3, 6) * HOUR)
            else:
                session = int(rng.exponential(daily / 2.5) * HOUR) + 10 * MINUTE
            stop = ts + session
            cursor = int(rng.integers(0, len(album)))
            while ts < stop and ts < self.end():
                if kind == "album-looper" and rng.random() < 0.85:
                    cursor = (cursor + 1) % len(album)
                    track = album[cursor]
                    kind_, played = "play", int(self.length(track) * rng.uniform(0.92, 1.0))
                else:
                    track = int(rng.choice(taste)) if rng.random() < 0.65 else self.hit()
                    kind_, played = self.listen(track, skip_rate, skip_scale)
                yield ts, track, kind_, played
                if rng.random() < 0.03:
                    yield ts + played, track, "like" if rng.random() < 0.8 else "share", 0
                ts += played + int(rng.exponential(4_000))
            ts += int(rng.exponential(5 * HOUR / max(daily, 0.5)))

    def _blatant(self, tracks: list[int]) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, HOUR))
        while ts < self.end():
            track = int(rng.choice(tracks))
            played = int(rng.integers(30_000, 35_000))
            yield ts, track, "play", played
            ts += played + int(rng.integers(500, 4_000))

    def _thin(self, targets: list[int]) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        wake = float(rng.uniform(7, 10))
        sleep = wake + float(rng.uniform(13, 16))
        per_day = int(rng.integers(12, 26))
        ts = self.start_ts + int(rng.integers(0, DAY))
        while ts < self.end():
            ts = self.next_awake(ts, wake, sleep % 24)
            if rng.random() < 0.5:
                track = int(rng.choice(targets))
                played = int(rng.integers(31_000, 45_000))
                yield ts, track, "play", played
            else:
                track = self.hit()
                kind, played = self.listen(track, 0.2, 15_000)
                yield ts, track, kind, played
            ts += played + int(rng.exponential((sleep - wake) * HOUR / per_day))

    def _stuffer(self, playlist: list[int]) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, 2 * HOUR))
        pos = int(rng.integers(0, len(playlist)))
        pause = float(rng.uniform(0, 24))
        while ts < self.end():
            ts = self.next_awake(ts, pause + 4, pause)  # a 4 h gap each day
            pos = (pos + 1) % len(playlist)
            track = playlist[pos]
            played = int(self.length(track) * rng.uniform(0.85, 1.0))
            yield ts, track, "play", played
            ts += played + int(rng.integers(300, 6_000))


@dataclass
class _Party:
    """A synchronised farm: sessions at human hours where every member plays the same short
    sequence of targets (and a little camouflage) within minutes of the others; between
    sessions each member lives an ordinary listener's life."""

    population: _Held
    targets: list[int]
    members: int
    sessions: list[tuple[int, list[int]]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        p, rng = self.population, self.population.rng
        ts = p.start_ts + int(rng.integers(2, 6) * HOUR)
        while ts < p.end():
            ts = p.next_awake(ts, 9.0, 23.0)
            picks = [int(t) for t in rng.choice(self.targets, int(rng.integers(4, 8)))]
            picks += [p.hit() for _ in range(int(rng.integers(1, 4)))]
            rng.shuffle(picks)
            self.sessions.append((ts, picks))
            ts += int(rng.uniform(3, 7) * HOUR)

    def member(self, index: int) -> Iterator[tuple[int, int, str, int]]:
        p, rng = self.population, self.population.rng
        taste = [p.hit() for _ in range(100)]
        own_ts = p.start_ts + int(rng.integers(0, DAY))
        for start, picks in self.sessions:
            # ordinary listening until the next session (human hours, full plays)
            while own_ts < start - 20 * MINUTE:
                own_ts = p.next_awake(own_ts, 8.0, 23.5)
                if own_ts >= start - 20 * MINUTE:
                    break
                track = int(rng.choice(taste)) if rng.random() < 0.6 else p.hit()
                kind, played = p.listen(track, 0.15, 15_000)
                yield own_ts, track, kind, played
                own_ts += played + int(rng.exponential(25 * MINUTE))
            ts = start + int(rng.integers(0, 3 * MINUTE))
            for track in picks:
                played = int(p.length(track) * rng.uniform(0.85, 1.0))
                yield ts, track, "play", played
                ts += played + int(rng.integers(1_000, 20_000))
            own_ts = max(own_ts, ts)
