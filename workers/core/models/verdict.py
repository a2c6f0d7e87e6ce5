"""From features ranked against a reference to a verdict: tail p-values, grouped, combined
so that one extreme signal or two moderate ones convict, while evidence that people share
(volume, repetition, few skips) may support a verdict but never make one (pure).

- A feature's p-value is its tail in the reference: ``(members at or above it + 1) /
  (members + 1)``; above the reference's largest tenth, the exponential tail fitted there
  (``reference.Reference.refit``): ``k / (members + 1) · exp(−(x − u) / e)``, so an
  extreme value is not capped at ``1 / (members + 1)``, a feature whose people spread far
  has a long tail, and a few members as extreme as the value (a farm that got into the
  reference) do not hide it.
- A group (features that measure the same behaviour) votes once: its smallest p-value
  times its size (Bonferroni).
- Over the convicting groups, Wilkinson's method, the better of "at least one as small as
  the smallest" and "at least two as small as the second smallest" (times 2 for taking the
  better of the two).
- Support groups may bring the result down to a quarter of it when they are extreme too,
  never further: alone they cannot convict.

The score is ``min(1, −log10(p) / 4)``: 0.75 at p = 10⁻³, 1 at 10⁻⁴.

>>> calm = Rank(at_least=400, size=1000, mean=0.1)
>>> extreme = Rank(at_least=0, size=1000, mean=0.1, threshold=0.3, excess=0.05)
>>> spec = (Feature("a", "g1"), Feature("b", "g2"), Feature("v", "volume", support=True))
>>> one = combine(spec, {"a": 0.9, "b": 0.1, "v": 0.1}, {"a": extreme, "b": calm, "v": calm})
>>> round(one.score, 2) >= 0.75, one.evidence
(True, ['a'])
>>> alone = combine(spec, {"a": 0.1, "b": 0.1, "v": 9.0}, {"a": calm, "b": calm, "v": extreme})
>>> alone.score < 0.3  # volume alone never convicts
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workers.core.models.reference import Rank, tail_k

__all__ = [
    "EXPLAIN_P",
    "Combined",
    "Feature",
    "combine",
    "feature_p",
    "p_of_score",
    "score_of_p",
    "wilkinson",
]

#: a feature is named in ``evidence`` at or below this p-value
EXPLAIN_P = 0.01
#: support evidence can lower a verdict's p-value to this share of it, no further
SUPPORT_FLOOR = 0.25


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    group: str
    #: evidence people share (volume, repetition, engagement): supports, never convicts
    support: bool = False
    #: pseudo-observations the value is shrunk toward the reference mean with
    prior: float = 5.0


@dataclass(frozen=True, slots=True)
class Combined:
    p: float
    score: float
    #: p-value per feature
    per_feature: dict[str, float]
    #: the features at or below ``EXPLAIN_P``, strongest first
    evidence: list[str]


def feature_p(x: float, rank: Rank) -> float:
    """The upper-tail p-value of ``x`` in the reference."""
    if rank.excess > 0 and x > rank.threshold:  # in the tail
        k = tail_k(rank.size)
        p = k / (rank.size + 1) * math.exp(-(x - rank.threshold) / rank.excess)
    else:
        p = (rank.at_least + 1) / (rank.size + 1)
    return min(1.0, max(p, 1e-300))


def wilkinson(ps: Sequence[float], k: int = 2) -> float:
    """The better of "at least r of m p-values as small as the r-th smallest", r = 1..k,
    times k (independent uniform p-values under the null)."""
    m = len(ps)
    if m == 0:
        return 1.0
    ordered = sorted(ps)
    best = 1.0
    for r in range(1, min(k, m) + 1):
        p = ordered[r - 1]
        # P(Binomial(m, p) >= r)
        below = sum(math.comb(m, j) * p**j * (1 - p) ** (m - j) for j in range(r))
        best = min(best, max(0.0, 1.0 - below))
    return min(1.0, k * best)


def score_of_p(p: float) -> float:
    return round(min(1.0, max(0.0, -math.log10(max(p, 1e-300)) / 4.0)), 4)


def p_of_score(score: float) -> float:
    """The p-value a score stands for (``score_of_p``'s inverse)."""
    return float(10.0 ** (-4.0 * min(1.0, max(0.0, score))))


def combine(
    spec: Sequence[Feature],
    x: Mapping[str, float],
    ranks: Mapping[str, Rank],
    *,
    extra: Mapping[str, float] | None = None,
) -> Combined:
    """The verdict of features ``x`` ranked as ``ranks``; ``extra``: more convicting groups,
    by their p-values (a listener's group, judged as a whole)."""
    per_feature = {f.name: feature_p(x[f.name], ranks[f.name]) for f in spec}
    groups: dict[tuple[str, bool], list[float]] = {}
    for f in spec:
        groups.setdefault((f.group, f.support), []).append(per_feature[f.name])
    convicting = [min(1.0, min(ps) * len(ps)) for (_, support), ps in groups.items() if not support]
    convicting += list((extra or {}).values())
    support = [min(1.0, min(ps) * len(ps)) for (_, support), ps in groups.items() if support]
    p = wilkinson(convicting)
    if support:
        backing = min(1.0, min(support) * len(support))
        p *= min(1.0, max(SUPPORT_FLOOR, backing / 0.05))
    evidence = sorted(
        (name for name, q in per_feature.items() if q <= EXPLAIN_P), key=per_feature.__getitem__
    )
    evidence += sorted(name for name, q in (extra or {}).items() if q <= EXPLAIN_P)
    return Combined(p=p, score=score_of_p(p), per_feature=per_feature, evidence=evidence)
