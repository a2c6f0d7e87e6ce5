"""Synthetic but realistic inputs: music-like audio with injected faults, and a listening
population (heavy-tailed track popularity, human sessions and skips) with bot farms mixed in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "BOT_STYLES",
    "FAULTS",
    "SHAPES",
    "AudioSource",
    "ListenEvent",
    "ListeningPopulation",
    "TrackLaunches",
]

FAULTS = ("clipping", "dropout", "noise_burst")


@dataclass
class AudioSource:
    """A music-like stream: a few harmonic voices, an envelope, a little noise."""

    tenant: str
    stream: str
    sample_rate: int = 44100
    channels: int = 2
    chunk_s: float = 0.5
    fault_rate: float = 0.0
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)
    _phase: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._base = float(self.rng.uniform(110, 440))

    def chunk(self, seq: int) -> tuple[npt.NDArray[np.float32], str | None]:
        """(frames, channels) in -1..1 and the injected fault, if any."""
        n = int(self.sample_rate * self.chunk_s)
        t = (np.arange(n) + seq * n) / self.sample_rate
        note = self._base * 2 ** (int(self.rng.integers(0, 12)) / 12)
        mono = np.zeros(n)
        for harmonic, weight in ((1, 0.5), (2, 0.25), (3, 0.12), (5, 0.06)):
            mono += weight * np.sin(2 * np.pi * note * harmonic * t + self._phase)
        mono *= 0.35 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        mono += 0.01 * self.rng.standard_normal(n)
        fault = None
        if self.fault_rate and self.rng.random() < self.fault_rate:
            fault = str(self.rng.choice(FAULTS))
            if fault == "clipping":  # overdrive: 3x past full scale, whatever the level was
                mono = np.clip(3.0 * mono / max(float(np.abs(mono).max()), 1e-6), -1.0, 1.0)
            elif fault == "dropout":
                start = int(self.rng.integers(0, n // 2))
                mono[start : start + int(0.08 * self.sample_rate)] = 0.0
            else:
                mono = 0.8 * self.rng.uniform(-1, 1, n)
        stereo = np.repeat(mono[:, None], self.channels, axis=1)
        return stereo.astype(np.float32), fault


@dataclass(frozen=True, slots=True)
class ListenEvent:
    fields: dict[str, object]
    is_bot: bool


BOT_STYLES = ("sniper", "looper", "farm")


@dataclass
class ListeningPopulation:
    """Users of one tenant listening to a Zipf-popular catalogue; some users are bots.

    Humans: sessions with pauses and nightly sleep, skips anywhere from 1 to 60 s (so some
    land just past 30 s), full and partial plays, likes and shares; one in ten is an
    "album looper" who replays a few favourite tracks. Bots come in three styles:
    snipers (stop 30-40 s in, a handful of tracks, no pause), loopers (whole plays of one
    to three tracks around the clock) and farms (many accounts sharing one promoted set of
    tracks, stopping 31-60 s in, with a sprinkle of random tracks and skips to look human).
    """

    tenant: str
    users: int = 200
    #: share of *accounts*; bots play far more than people, so their share of events is higher
    bot_share: float = 0.02
    tracks: int = 500
    start_ts: int = 1_764_000_000_000
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        weights = 1.0 / np.arange(1, self.tracks + 1) ** 1.1
        self._track_p = weights / weights.sum()
        self._track_ms = self.rng.integers(120_000, 300_000, self.tracks)
        n_bots = round(self.users * self.bot_share)
        self._bots = {u: BOT_STYLES[u % len(BOT_STYLES)] for u in range(n_bots)}
        self._clock = {
            u: self.start_ts + int(self.rng.integers(0, 3_600_000)) for u in range(self.users)
        }
        self._farm_tracks = self.rng.choice(self.tracks, 8, replace=False)
        self._favourites = {
            u: self.rng.choice(self.tracks, int(self.rng.integers(1, 6)), replace=False)
            for u in range(self.users)
        }
        self._loopers = {u for u in range(n_bots, self.users) if self.rng.random() < 0.1}
        self._serial = 0

    def is_bot(self, user: int) -> bool:
        return user in self._bots

    def style(self, user: int) -> str | None:
        """The bot style of ``user`` (``BOT_STYLES``), None for a person."""
        return self._bots.get(user)

    def events(self) -> Iterator[ListenEvent]:
        """Events in event-time order: each user acts on their own schedule, so a bot that
        plays around the clock produces far more events than a human with a life."""
        due = [(ts, user) for user, ts in self._clock.items()]
        heapq.heapify(due)
        while True:
            _, user = heapq.heappop(due)
            event = self._event(user)
            heapq.heappush(due, (self._clock[user], user))
            yield event

    def _human(self, user: int) -> tuple[int, str, int, int]:
        rng = self.rng
        if user in self._loopers and rng.random() < 0.7:
            track = int(rng.choice(self._favourites[user]))
        else:
            track = int(rng.choice(self.tracks, p=self._track_p))
        full = int(self._track_ms[track])
        roll = rng.random()
        if roll < 0.25:
            kind, played = "skip", int(rng.integers(1_000, 60_000))
        elif roll < 0.93:
            kind, played = "play", int(full * rng.uniform(0.5, 1.0))
        else:
            kind, played = ("like" if roll < 0.98 else "share"), 0
        gap = int(rng.exponential(60_000))
        if rng.random() < 0.03:  # end of a session: hours away, mostly at night
            gap += int(rng.integers(3, 10)) * 3_600_000
        return track, kind, played, gap

    def _bot(self, user: int, style: str) -> tuple[int, str, int, int]:
        rng = self.rng
        if style == "sniper":
            track = int(rng.choice(self._favourites[user]))
            return track, "play", int(rng.integers(30_000, 40_000)), int(rng.integers(500, 5_000))
        if style == "looper":
            track = int(rng.choice(self._favourites[user][:3]))
            full = int(self._track_ms[track])
            return track, "play", int(full * rng.uniform(0.97, 1.0)), int(rng.integers(0, 3_000))
        if rng.random() < 0.15:  # farm account disguising itself
            track = int(rng.choice(self.tracks, p=self._track_p))
            if rng.random() < 0.5:
                return track, "skip", int(rng.integers(2_000, 30_000)), int(rng.integers(0, 30_000))
        else:
            track = int(rng.choice(self._farm_tracks))
        return track, "play", int(rng.integers(31_000, 60_000)), int(rng.integers(1_000, 20_000))

    def _event(self, user: int) -> ListenEvent:
        self._serial += 1
        style = self._bots.get(user)
        track, kind, played, gap = self._human(user) if style is None else self._bot(user, style)
        ts = self._clock[user]
        self._clock[user] = ts + played + gap
        fields: dict[str, object] = {
            "event_id": f"{self.seed}-{self._serial}",
            "tenant": self.tenant,
            "user_id": f"u{user}",
            "track_id": f"t{track}",
            "type": kind,
            "ts": ts,
        }
        if kind in ("play", "skip"):
            fields["ms_played"] = played
            fields["track_ms"] = int(self._track_ms[track])
        return ListenEvent(fields, style is not None)


SHAPES = ("rising", "flat", "decaying", "launch")


@dataclass
class TrackLaunches:
    """Tracks whose expected plays per window rise, stay flat, decay, or spike and fade.

    ``windows()`` yields, per window, each track's counts: plays ~ Poisson(rate), and
    skips, likes, shares and listeners drawn from them.
    """

    tracks: int = 300
    windows_n: int = 48
    seed: int = 0

    def windows(self) -> list[list[tuple[str, int, int, int, int, int]]]:
        """[window][track] -> (shape, plays, skips, likes, shares, listeners)."""
        rng = np.random.default_rng(self.seed)
        shapes = rng.choice(SHAPES, self.tracks)
        base = rng.lognormal(np.log(40), 1.0, self.tracks)
        growth = rng.uniform(1.03, 1.12, self.tracks)
        decay = rng.uniform(0.85, 0.97, self.tracks)
        peak_at = rng.integers(4, 16, self.tracks)
        out = []
        for w in range(self.windows_n):
            rows = []
            for t in range(self.tracks):
                shape = str(shapes[t])
                if shape == "rising":
                    rate = base[t] * growth[t] ** w
                elif shape == "decaying":
                    rate = base[t] * 4 * decay[t] ** w
                elif shape == "launch":
                    rate = base[t] * (
                        growth[t] ** (3 * w)
                        if w < peak_at[t]
                        else growth[t] ** (3 * peak_at[t]) * decay[t] ** (w - peak_at[t])
                    )
                else:
                    rate = base[t]
                rate *= 1.0 + 0.25 * np.sin(2 * np.pi * w / 24)  # time of day
                plays = int(rng.poisson(min(rate, 1e5)))
                rows.append(
                    (
                        shape,
                        plays,
                        int(rng.binomial(plays, 0.2)),
                        int(rng.poisson(0.05 * plays)),
                        int(rng.poisson(0.01 * plays)),
                        int(rng.binomial(plays, 0.7)),
                    )
                )
            out.append(rows)
        return out
