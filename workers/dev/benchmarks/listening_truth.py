"""What the listening models are judged against: every single feature an analyst could
compute from the raw events with hindsight, per listener and per track, the best of which
(chosen with the labels, direction included) is each model's baseline (docs/models.md).

Listener features: their own habits (plays ending 30-37 s in, hours of the day covered,
listens per hour, few skips, few distinct tracks, their top track's share, no likes) and
track-level ones over the tracks they played, with the tracks' final figures: those
tracks' share of plays ending 30-37 s in, their listens per listener, the share of their
listens from listeners for whom the track is a third of what they play (a thin audience),
and the share of the listener's own listens made within three minutes of two other
accounts' listens of the same track (synchrony).

Track features: its share of plays ending 30-37 s in, listens per listener, thin-audience
share, synchrony share.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.dev.benchmarks.common import roc_auc

__all__ = ["Ledger", "best_single", "recall_at"]

SYNC_MS = 3 * 60_000


@dataclass
class _Listener:
    listens: int = 0
    near30: int = 0
    skips: int = 0
    likes: int = 0
    hours: Counter[int] = field(default_factory=Counter)
    tracks: Counter[str] = field(default_factory=Counter)
    first: int = 0
    last: int = 0


@dataclass
class Ledger:
    """Every listen, kept small, and the figures computed from all of them at the end."""

    listeners: dict[str, _Listener] = field(default_factory=lambda: defaultdict(_Listener))
    #: (track, ts, user, near30) per listen
    listens: list[tuple[str, int, str, bool]] = field(default_factory=list)

    def add(self, body: dict[str, Any]) -> None:
        user = str(body["user_id"])
        me = self.listeners[user]
        if body["type"] == "like" or body["type"] == "share":
            me.likes += 1
            return
        ts, track = int(body["ts"]), str(body["track_id"])
        near30 = 30_000 <= int(body["ms_played"]) < 37_000
        me.listens += 1
        me.near30 += near30
        me.skips += body["type"] == "skip"
        me.hours[(ts // 3_600_000) % 24] += 1
        me.tracks[track] += 1
        me.first = me.first or ts
        me.last = ts
        self.listens.append((track, ts, user, near30))

    def _synchronous(self) -> list[bool]:
        """Per listen: two other accounts listened to the track within ``SYNC_MS``."""
        by_track: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
        for i, (track, ts, user, _) in enumerate(self.listens):
            by_track[track].append((ts, user, i))
        out = [False] * len(self.listens)
        for plays in by_track.values():
            plays.sort()
            lo = 0
            for hi, (ts, _, _) in enumerate(plays):
                while plays[lo][0] < ts - SYNC_MS:
                    lo += 1
                window = plays[lo : hi + 1]
                users = {u for _, u, _ in window}
                if len(users) >= 3:
                    for _, _, i in window:
                        out[i] = True
        return out

    def features(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """(per listener, per track): name -> value, higher or lower meaning more artificial
        as the labels will tell."""
        sync = self._synchronous()
        t_listens: Counter[str] = Counter()
        t_near30: Counter[str] = Counter()
        t_thin: Counter[str] = Counter()
        t_sync: Counter[str] = Counter()
        t_users: dict[str, set[str]] = defaultdict(set)
        for (track, _, user, near30), synchronous in zip(self.listens, sync, strict=True):
            me = self.listeners[user]
            t_listens[track] += 1
            t_near30[track] += near30
            t_thin[track] += me.tracks[track] >= me.listens / 3
            t_sync[track] += synchronous
            t_users[track].add(user)
        tracks = {
            t: {
                "near-30 s share": t_near30[t] / n,
                "listens per listener": n / len(t_users[t]),
                "thin-audience share": t_thin[t] / n,
                "synchronous share": t_sync[t] / n,
            }
            for t, n in t_listens.items()
        }
        own_sync: Counter[str] = Counter()
        for (_, _, user, _), synchronous in zip(self.listens, sync, strict=True):
            own_sync[user] += synchronous
        listeners = {}
        for user, me in self.listeners.items():
            n = max(1, me.listens)
            total = sum(me.hours.values())
            entropy = (
                -sum(c / total * math.log(c / total) for c in me.hours.values()) if total else 0.0
            )
            played = [(tracks[t], c) for t, c in me.tracks.items()]

            def over_tracks(name: str, played: list[tuple[dict[str, float], int]] = played,
                            n: int = n) -> float:  # fmt: skip
                return sum(f[name] * c for f, c in played) / n

            listeners[user] = {
                "plays ending 30-37 s": me.near30 / n,
                "hours of the day covered": entropy,
                "listens per hour": me.listens / max(1.0, (me.last - me.first) / 3_600_000),
                "skip share": me.skips / n,
                "distinct tracks per listen": len(me.tracks) / n,
                "top track's share": max(me.tracks.values(), default=0) / n,
                "likes per listen": me.likes / n,
                "tracks' near-30 s share": over_tracks("near-30 s share"),
                "tracks' listens per listener": over_tracks("listens per listener"),
                "tracks' thin-audience share": over_tracks("thin-audience share"),
                "own synchronous share": own_sync[user] / n,
            }
        return listeners, tracks


def best_single(
    features: dict[str, dict[str, float]], subjects: list[str], labels: np.ndarray
) -> tuple[str, float, dict[str, float]]:
    """The single feature with the best AUC, either direction (chosen with the labels)."""
    aucs = {}
    for name in next(iter(features.values())):
        values = np.array([features[s][name] for s in subjects])
        auc = roc_auc(values, labels)
        aucs[name] = max(auc, 1.0 - auc)
    best = max(aucs, key=aucs.__getitem__)
    return best, aucs[best], aucs


def recall_at(scores: np.ndarray, labels: np.ndarray, negatives_flagged: float) -> float:
    """Recall of the positives at the threshold that flags this share of negatives."""
    if not labels.any() or labels.all():
        return float("nan")
    threshold = np.quantile(scores[~labels], 1.0 - negatives_flagged)
    return float(np.mean(scores[labels] > threshold))
