"""Two more listening populations, written apart from ``loadgen.ListeningPopulation`` (the
one the account model was tuned on) to judge it on behaviour it was not tuned for.

Both are built on their own assumptions and share nothing with the first but the event
format. Each listener has a kind; ``truth()`` says which accounts are bots and which farm
each belongs to.

- ``SessionPopulation``: a catalogue of 20,000 tracks; people with a taste of their own,
  daily routines (commute, evening) and sleep; heavy people who look like bots (fans
  looping one album all day, sleep-music sessions all night). Bots: *mimics* (human
  sessions, sleep and skips, but a third of their plays go to a farm's 30 targets, stopped
  31-45 s in), *spread farms* (2,000 shared targets, each played rarely, round the clock)
  and *blatant* ones (three tracks, 30-32 s, non-stop).
- ``PlaylistPopulation``: people follow playlists in order, full plays mostly, with power
  listeners on 16 hours a day. Bots: *proxy farms* (many accounts, 40-80 plays a day each,
  daytime only, target plays ended 33-40 s in) and *playlist stuffers* (full plays of a
  playlist with a few targets hidden among hits, day and night).
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from workers.dev.loadgen import ListenEvent

__all__ = ["Account", "PlaylistPopulation", "SessionPopulation"]

HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    kind: str
    is_bot: bool
    farm: str | None = None


@dataclass
class _Population(ABC):
    tenant: str
    seed: int = 0
    start_ts: int = 1_764_000_000_000
    tracks: int = 20_000
    rng: np.random.Generator = field(init=False, repr=False)
    accounts: list[Account] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        weights = 1.0 / np.arange(1, self.tracks + 1) ** 0.9
        self._p = weights / weights.sum()
        self._cdf = np.cumsum(self._p)
        self._length = self.rng.lognormal(np.log(200_000), 0.3, self.tracks).astype(int)
        self._serial = 0
        self.build()

    @abstractmethod
    def build(self) -> None:
        """Create the accounts (``self.accounts``) and whatever they need."""

    def popular(self) -> int:
        found = int(np.searchsorted(self._cdf, float(self.rng.random())))
        return min(self.tracks - 1, found)

    def truth(self) -> dict[str, Account]:
        return {a.user: a for a in self.accounts}

    @abstractmethod
    def next_event(self, index: int, ts: int) -> tuple[int, str, int, int]:
        """(track, type, ms_played, gap to the next event in ms) of account ``index``."""

    def events(self) -> Iterator[ListenEvent]:
        due = [
            (self.start_ts + int(self.rng.integers(0, 6 * HOUR)), i)
            for i in range(len(self.accounts))
        ]
        heapq.heapify(due)
        while True:
            ts, i = heapq.heappop(due)
            track, kind, played, gap = self.next_event(i, ts)
            heapq.heappush(due, (ts + played + max(gap, 200), i))
            self._serial += 1
            account = self.accounts[i]
            fields: dict[str, object] = {
                "event_id": f"{type(self).__name__[:3]}{self.seed}-{self._serial}",
                "tenant": self.tenant,
                "user_id": account.user,
                "track_id": f"trk:{track}",
                "type": kind,
                "ts": ts,
            }
            if kind in ("play", "skip"):
                fields["ms_played"] = played
                fields["track_ms"] = int(self._length[track])
            yield ListenEvent(fields, account.is_bot)

    def awake(self, ts: int, wake: int, sleep: int) -> int:
        """0 when ``ts`` is inside the waking hours [wake, sleep), else ms until wake."""
        hour = (ts // HOUR) % 24
        if wake <= hour < sleep:
            return 0
        return int(((wake - hour) % 24) * HOUR - ts % HOUR)


@dataclass
class SessionPopulation(_Population):
    people: int = 1200
    mimics: int = 12
    spread: int = 12
    blatant: int = 6

    def build(self) -> None:
        rng = self.rng
        self._taste: list[np.ndarray] = []
        self._routine: list[tuple[int, int]] = []
        kinds = (
            ["person"] * self.people
            + ["mimic"] * self.mimics
            + ["spread-farm"] * self.spread
            + ["blatant"] * self.blatant
        )
        for i, drawn in enumerate(kinds):
            kind = drawn
            if kind == "person":
                roll = rng.random()
                kind = "album-fan" if roll < 0.03 else "sleep-music" if roll < 0.06 else kind
            farm = {"mimic": "mimic-farm", "spread-farm": "spread-farm", "blatant": None}.get(kind)
            bot = kind in ("mimic", "spread-farm", "blatant")
            self.accounts.append(Account(f"s{self.seed}:{i}", kind, bot, farm))
            self._taste.append(
                np.array([self.popular() for _ in range(int(rng.integers(20, 300)))])
            )
            wake = int(rng.integers(5, 10))
            self._routine.append((wake, wake + int(rng.integers(14, 18))))
        self._mimic_targets = rng.choice(self.tracks, 30, replace=False)
        self._spread_targets = rng.choice(self.tracks, 2000, replace=False)
        self._album = {i: rng.choice(self.tracks, 12, replace=False) for i in range(len(kinds))}
        self._cursor = [0] * len(kinds)

    def _person(self, i: int, ts: int, kind: str) -> tuple[int, str, int, int]:
        rng = self.rng
        wake, sleep = self._routine[i]
        # sleep music: one calm track on repeat through the night, an ordinary life by day
        night = self.awake(ts, wake, sleep) and not self.awake(
            ts, sleep % 24, (sleep + 8) % 24 or 24
        )
        if kind == "sleep-music" and night:
            track = int(self._album[i][0])
            return track, "play", int(self._length[track]), 0
        wait = self.awake(ts, wake, sleep)
        if wait:
            return self.popular(), "like", 0, wait
        if kind == "album-fan" and rng.random() < 0.8:  # the same album, in order, all day
            self._cursor[i] = (self._cursor[i] + 1) % 12
            track = int(self._album[i][self._cursor[i]])
            return (
                track,
                "play",
                int(self._length[track] * rng.uniform(0.95, 1.0)),
                int(rng.integers(0, 2_000)),
            )
        track = int(rng.choice(self._taste[i])) if rng.random() < 0.7 else self.popular()
        full = int(self._length[track])
        roll = rng.random()
        if roll < 0.3:
            kind_, played = "skip", int(rng.gamma(2.0, 12_000))
        elif roll < 0.95:
            kind_, played = "play", int(full * rng.uniform(0.4, 1.0))
        else:
            kind_, played = ("like" if roll < 0.99 else "share"), 0
        gap = int(rng.exponential(20_000))
        if rng.random() < 0.02:  # a break between sessions
            gap += int(rng.integers(1, 4) * HOUR)
        return track, kind_, min(played, full), gap

    def next_event(self, i: int, ts: int) -> tuple[int, str, int, int]:
        rng = self.rng
        kind = self.accounts[i].kind
        if kind == "mimic":
            wake, sleep = self._routine[i]
            wait = self.awake(ts, wake, sleep)
            if wait:
                return self.popular(), "like", 0, wait
            if rng.random() < 0.35:
                track = int(rng.choice(self._mimic_targets))
                return (
                    track,
                    "play",
                    int(rng.integers(31_000, 45_000)),
                    int(rng.exponential(20_000)),
                )
            return self._person(i, ts, "person")
        if kind == "spread-farm":
            track = int(rng.choice(self._spread_targets))
            if rng.random() < 0.1:
                return (
                    self.popular(),
                    "skip",
                    int(rng.integers(3_000, 25_000)),
                    int(rng.integers(1_000, 60_000)),
                )
            return (
                track,
                "play",
                int(rng.integers(30_000, 36_000)),
                int(rng.integers(1_000, 90_000)),
            )
        if kind == "blatant":
            track = int(self._album[i][int(rng.integers(0, 3))])
            return track, "play", int(rng.integers(30_000, 32_000)), int(rng.integers(100, 2_000))
        return self._person(i, ts, kind)


@dataclass
class PlaylistPopulation(_Population):
    people: int = 1200
    proxies: int = 24
    stuffers: int = 8
    tracks: int = 8_000

    def build(self) -> None:
        rng = self.rng
        self._playlists = [np.array([self.popular() for _ in range(30)]) for _ in range(300)]
        self._targets = rng.choice(self.tracks, 6, replace=False)
        stuffed = [self.popular() for _ in range(24)]
        self._stuffed = np.array(stuffed[:6] + list(self._targets) + stuffed[6:])
        kinds = (
            ["person"] * self.people + ["proxy-farm"] * self.proxies + ["stuffer"] * self.stuffers
        )
        self._state: list[dict[str, int]] = []
        for i, drawn in enumerate(kinds):
            kind = drawn
            if kind == "person" and rng.random() < 0.08:
                kind = "power-listener"
            bot = kind in ("proxy-farm", "stuffer")
            farm = kind if bot else None
            self.accounts.append(Account(f"p{self.seed}@{i}", kind, bot, farm))
            wake = int(rng.integers(6, 11))
            hours = 16 if kind in ("power-listener", "stuffer") else int(rng.integers(3, 9))
            self._state.append(
                {
                    "playlist": int(rng.integers(0, 300)),
                    "pos": 0,
                    "wake": wake,
                    "sleep": wake + hours,
                }
            )

    def next_event(self, i: int, ts: int) -> tuple[int, str, int, int]:
        rng = self.rng
        state, kind = self._state[i], self.accounts[i].kind
        if kind == "stuffer":  # the stuffed playlist in order, whole plays, around the clock
            state["pos"] = (state["pos"] + 1) % len(self._stuffed)
            track = int(self._stuffed[state["pos"]])
            return (
                track,
                "play",
                int(self._length[track] * rng.uniform(0.9, 1.0)),
                int(rng.integers(500, 5_000)),
            )
        wait = self.awake(ts, state["wake"], min(24, state["sleep"]))
        if kind == "proxy-farm":  # low volume per account, daytime, targets ended 33-40 s in
            if wait:
                return self.popular(), "like", 0, wait
            if rng.random() < 0.6:
                track = int(rng.choice(self._targets))
                return (
                    track,
                    "play",
                    int(rng.integers(33_000, 40_000)),
                    int(rng.integers(600_000, 1_800_000)),
                )
            track = self.popular()
            return (
                track,
                "play",
                int(self._length[track] * rng.uniform(0.3, 1.0)),
                int(rng.integers(60_000, 900_000)),
            )
        if wait:
            return self.popular(), "share" if rng.random() < 0.1 else "like", 0, wait
        if rng.random() < 0.03:
            state["playlist"] = int(rng.integers(0, 300))
        playlist = self._playlists[state["playlist"]]
        state["pos"] = (state["pos"] + 1) % len(playlist)
        track = int(playlist[state["pos"]])
        full = int(self._length[track])
        if rng.random() < 0.15:
            return track, "skip", int(rng.uniform(2_000, 60_000)), int(rng.integers(0, 5_000))
        gap = int(rng.integers(0, 4_000)) + (
            int(rng.integers(1, 3) * HOUR) if rng.random() < 0.01 else 0
        )
        return track, "play", int(full * rng.uniform(0.8, 1.0)), gap
