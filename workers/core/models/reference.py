"""A tenant's reference population: a bounded, stable sample of *established* listeners (or
tracks), one entry each, against which a listener's features are ranked (pure; the
reference ``lua/reference.lua`` is checked against).

The sample is bottom-k by hash: the ``size`` members with the smallest hashes among those
that asked to join (established, not currently judged suspicious). It is uniform over them,
the same on every worker, and stable: a member stays until a smaller hash pushes it out or
it leaves (judged suspicious). Each feature keeps its members' values and their sum (the
mean new listeners are shrunk toward).

Above the reference's largest tenth, a value's p-value comes from a *tail*: an exponential
fitted on that tenth (peaks over a threshold), ``u`` its smallest value and ``e`` the
median excess over ``u`` divided by ln 2 (the exponential's mean excess, read from its
median so that a few extreme members, a farm that got in before it was caught, do not
stretch the tail and hide themselves), at least ``MIN_EXCESS``. Tails are refit every
``REFIT_EVERY`` events the tenant's models learn.

>>> ref = Reference(("a",), size=3)
>>> for member, h, x in (("u1", 5, 0.1), ("u2", 9, 0.2), ("u3", 2, 0.3), ("u4", 7, 0.4)):
...     ref.upsert(member, h, {"a": x})
>>> sorted(ref.members), ref.rank({"a": 0.25})["a"].at_least  # u2's hash was the largest
(['u1', 'u3', 'u4'], 2)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["MIN_EXCESS", "REFIT_EVERY", "TAIL_K", "Rank", "Reference", "tail_k", "warming"]

#: a tail is fitted on the reference's largest tenth, at least TAIL_K values
TAIL_K = 10
#: the slowest a tail may fall: e-fold per this much of the feature
MIN_EXCESS = 0.01
#: tails are refit every this many events learnt
REFIT_EVERY = 64


def tail_k(size: int) -> int:
    """How many of the largest values the tail is fitted on."""
    return max(TAIL_K, size // 10)


def fit_tail(descending: Sequence[float]) -> tuple[float, float]:
    """(threshold, scale) of the exponential tail over the largest values, largest first."""
    threshold = descending[-1]
    excesses = sorted(v - threshold for v in descending[:-1])
    m = len(excesses)
    median = excesses[m // 2] if m % 2 else (excesses[m // 2 - 1] + excesses[m // 2]) / 2.0
    return threshold, max(MIN_EXCESS, median / math.log(2.0))


class Rank(NamedTuple):
    """Where a value stands in the reference: members at or above it, their number, the
    feature's mean over them, and the feature's tail: threshold and scale (0: no tail).
    A named tuple: seventeen are made per event, and a frozen dataclass costs ~4× more to
    build."""

    at_least: int
    size: int
    mean: float
    threshold: float = 0.0
    excess: float = 0.0
    #: the most members the reference has held (0: not known, ``size`` stands for it)
    peak: int = 0

    def warm(self, minimum: int) -> bool:
        """Whether the reference ranks well enough to judge by: it has held ``minimum``
        members and still holds half of them. Once warm it stays warm while listeners
        judged suspicious leave it, so verdicts do not flap off and on at the threshold."""
        return max(self.peak, self.size) >= minimum and self.size >= minimum // 2


def warming(ranks: Mapping[str, Rank], minimum: int) -> bool:
    """Whether a subject ranked as ``ranks`` (one reference, so any feature's rank tells)
    is judged before its reference is ``Rank.warm``."""
    return not ranks or not next(iter(ranks.values())).warm(minimum)


@dataclass
class Reference:
    features: Sequence[str]
    size: int = 1000
    #: member -> its hash
    members: dict[str, int] = field(default_factory=dict)
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    #: each feature's values in order (a sorted set's order: ranks by bisection)
    ordered: dict[str, list[float]] = field(default_factory=dict)
    #: each feature's tail as last refit: (threshold, scale)
    tails: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the most members it has held
    peak: int = 0

    def __post_init__(self) -> None:
        for name in self.features:
            self.values.setdefault(name, {})
            self.sums.setdefault(name, 0.0)
            self.ordered.setdefault(name, sorted(self.values[name].values()))

    def mean(self, name: str) -> float:
        n = len(self.members)
        return self.sums[name] / n if n else 0.0

    def rank(self, x: Mapping[str, float]) -> dict[str, Rank]:
        n = len(self.members)
        out = {}
        for name in self.features:
            ordered = self.ordered[name]
            at_least = len(ordered) - bisect.bisect_left(ordered, x[name])
            threshold, excess = self.tails.get(name, (0.0, 0.0))
            out[name] = Rank(at_least, n, self.mean(name), threshold, excess, max(n, self.peak))
        return out

    def refit(self) -> None:
        """Each feature's tail from its largest tenth (none under ``TAIL_K`` members)."""
        n = len(self.members)
        for name in self.features:
            if n < TAIL_K:
                self.tails.pop(name, None)
                continue
            top = self.ordered[name][-tail_k(n) :]
            self.tails[name] = fit_tail(top[::-1])

    def upsert(self, member: str, hashed: int, x: Mapping[str, float]) -> None:
        """Let ``member`` in (or update it) if its hash is small enough."""
        if member not in self.members:
            if len(self.members) >= self.size and hashed >= max(self.members.values()):
                return
            self.members[member] = hashed
            self.peak = max(self.peak, min(len(self.members), self.size))
        for name in self.features:
            old = self.values[name].get(member)
            if old is not None:
                self.sums[name] -= old
                self._unorder(name, old)
            bisect.insort(self.ordered[name], x[name])
            self.values[name][member] = x[name]
            self.sums[name] += x[name]
        if len(self.members) > self.size:
            self.remove(max(self.members, key=lambda m: (self.members[m], m)))

    def remove(self, member: str) -> None:
        if self.members.pop(member, None) is None:
            return
        for name in self.features:
            old = self.values[name].pop(member)
            self.sums[name] -= old
            self._unorder(name, old)

    def _unorder(self, name: str, value: float) -> None:
        ordered = self.ordered[name]
        del ordered[bisect.bisect_left(ordered, value)]
