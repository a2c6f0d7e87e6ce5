"""Synthetic but realistic inputs: music-like audio with injected faults, and a listening
population (heavy-tailed track popularity, human sessions and skips) with bot farms mixed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

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
            if fault == "clipping":
                mono = np.clip(mono * 6.0, -1.0, 1.0)
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


@dataclass
class ListeningPopulation:
    """Users of one tenant listening to a Zipf-popular catalogue; some users are bots."""

    tenant: str
    users: int = 200
    bot_share: float = 0.05
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
        self._bots = set(range(n_bots))
        self._clock = {
            u: self.start_ts + int(self.rng.integers(0, 3_600_000)) for u in range(self.users)
        }
        self._bot_loop = {u: self.rng.choice(self.tracks, 3, replace=False) for u in self._bots}
        self._serial = 0

    def is_bot(self, user: int) -> bool:
        return user in self._bots

    def events(self) -> Iterator[ListenEvent]:
        while True:
            user = int(self.rng.integers(0, self.users))
            yield self._event(user)

    def _event(self, user: int) -> ListenEvent:
        self._serial += 1
        bot = user in self._bots
        if bot:
            track = int(self.rng.choice(self._bot_loop[user]))
            kind, played = "play", int(self.rng.integers(30_500, 34_000))
            gap = int(self.rng.integers(1_000, 5_000))
        else:
            track = int(self.rng.choice(self.tracks, p=self._track_p))
            full = int(self._track_ms[track])
            roll = self.rng.random()
            if roll < 0.25:
                kind, played = "skip", int(self.rng.integers(1_000, 29_000))
            elif roll < 0.93:
                kind, played = "play", int(full * self.rng.uniform(0.6, 1.0))
            else:
                kind, played = ("like" if roll < 0.98 else "share"), 0
            # humans pause between sessions, mostly at night
            gap = int(self.rng.exponential(60_000)) + (
                int(self.rng.integers(4, 9)) * 3_600_000 if self.rng.random() < 0.02 else 0
            )
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
        return ListenEvent(fields, bot)
