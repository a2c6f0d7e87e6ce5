"""Generated tenants with known taste clusters, for the recommendation benchmark.

The catalogue is real audio: each taste cluster is one sound (sox's plucked strings,
square, sawtooth and triangle waves at many tempi and keys; espeak-ng speech in several
voices), each track a clip embedded by the tagger. Listeners belong to a cluster. Two
independent generators of listening, with different mechanisms:

- ``sessions`` (tuned on): a listener plays their cluster's tracks in sessions, by
  popularity, often the track catalogued next to the one before (a sequel, an album), now
  and then another cluster's; some tracks are new releases, first heard in the held-out
  plays (cold start: only their sound can find them).
- ``playlists`` (held out): a listener follows two or three playlists mixing two
  clusters, in order from a random place, skipping now and then; the held-out play is
  the playlist's next track.

Each listener's last play is held out; the others go through the listening step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workers.core.tagging import TagModel, patches_of
from workers.dev import corpus

__all__ = ["Catalogue", "Listening", "catalogue", "playlists", "sessions"]

CLUSTERS = ("pluck", "square", "sawtooth", "triangle", "speech")
PLAY_GAP_MS = 200_000
SESSION_GAP_MS = 3 * 3600 * 1000


@dataclass
class Catalogue:
    tracks: list[str]
    cluster: dict[str, int]
    embeddings: dict[str, np.ndarray]
    new: set[str] = field(default_factory=set)

    def of(self, cluster: int, *, new: bool | None = None) -> list[str]:
        return [
            t
            for t in self.tracks
            if self.cluster[t] == cluster and (new is None or (t in self.new) == new)
        ]


def catalogue(per_cluster: int, model: TagModel, *, new_share: float = 0.25) -> Catalogue:
    tracks, cluster, embeddings, new = [], {}, {}, set()
    for c, name in enumerate(CLUSTERS):
        for j in range(per_cluster):
            audio = (
                corpus.speech(j, sr=16000, seconds=6.0)
                if name == "speech"
                else corpus.music(4 * j + c, sr=16000, seconds=6.0)
            )
            track = f"{name}-{j}"
            tracks.append(track)
            cluster[track] = c
            embeddings[track] = model.run(patches_of(audio)).embeddings.mean(0)
            if j >= per_cluster * (1 - new_share):
                new.add(track)
    return Catalogue(tracks, cluster, embeddings, new)


@dataclass
class Listening:
    #: (user, track, ts, ms_played) in event-time order per user
    plays: list[tuple[str, str, int, int]]
    held_out: dict[str, str]


def _zipf(n: int, rng: np.random.Generator) -> int:
    weights = 1.0 / np.arange(1, n + 1) ** 1.1
    return int(rng.choice(n, p=weights / weights.sum()))


def sessions(cat: Catalogue, users: int, *, start_ts: int, seed: int) -> Listening:
    rng = np.random.default_rng(seed)
    plays, held_out = [], {}
    for u in range(users):
        user, home = f"s{u}", int(rng.integers(0, len(CLUSTERS)))
        other = int(rng.choice([c for c in range(len(CLUSTERS)) if c != home]))
        ts = start_ts + int(rng.integers(0, 3_600_000))
        last: str | None = None
        for _ in range(int(rng.integers(3, 8))):
            for _ in range(int(rng.integers(4, 12))):
                last = _next(cat, rng, home, other, last)
                plays.append((user, last, ts, int(rng.integers(60_000, 240_000))))
                ts += PLAY_GAP_MS
            ts += SESSION_GAP_MS
            last = None
        ts -= SESSION_GAP_MS  # the held-out play continues the last session
        if rng.random() < 0.25 and cat.of(home, new=True):
            held_out[user] = str(rng.choice(cat.of(home, new=True)))
        else:
            held_out[user] = _next(cat, rng, home, other, plays[-1][1])
    return Listening(plays, held_out)


def _next(cat: Catalogue, rng: np.random.Generator, home: int, other: int, last: str | None) -> str:
    cluster = other if rng.random() < 0.15 else home
    old = cat.of(cluster, new=False)
    if last is not None and cat.cluster[last] == cluster and rng.random() < 0.5:
        i = old.index(last) if last in old else 0
        return old[(i + 1) % len(old)]  # the one catalogued next: a sequel
    return old[_zipf(len(old), rng)]


def playlists(cat: Catalogue, users: int, *, start_ts: int, seed: int) -> Listening:
    rng = np.random.default_rng(seed)
    lists = []
    for _ in range(max(8, users // 10)):
        a, b = rng.choice(len(CLUSTERS), 2, replace=False)
        pool = cat.of(int(a)) + cat.of(int(b))
        lists.append([str(t) for t in rng.choice(pool, min(15, len(pool)), replace=False)])
    plays, held_out = [], {}
    for u in range(users):
        user = f"p{u}"
        favourites = rng.choice(len(lists), int(rng.integers(2, 4)), replace=False)
        ts = start_ts + int(rng.integers(0, 3_600_000))
        position = 0
        playlist: list[str] = []
        for _ in range(int(rng.integers(3, 7))):
            playlist = lists[int(rng.choice(favourites))]
            position = int(rng.integers(0, len(playlist)))
            for _ in range(int(rng.integers(5, 11))):
                played = int(rng.integers(5_000, 25_000) if rng.random() < 0.1 else 150_000)
                plays.append((user, playlist[position % len(playlist)], ts, played))
                position += 1
                ts += PLAY_GAP_MS
            ts += SESSION_GAP_MS
        held_out[user] = playlist[position % len(playlist)]
    return Listening(plays, held_out)
