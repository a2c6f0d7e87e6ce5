"""Listener segments follow River's KMeans rule (the reference), started from the same
centres; the Redis script's copy is checked against this one by the store contract."""

from __future__ import annotations

import numpy as np
from river import cluster

from workers.core.models.segments import Segmenter, initial_centre


def test_the_segmenter_is_rivers_kmeans_from_fixed_centres() -> None:
    rng = np.random.default_rng(3)
    ours = Segmenter(k=4, halflife=0.1, dims=3)
    theirs = cluster.KMeans(n_clusters=4, halflife=0.1, p=2, seed=0)
    for i in range(4):
        theirs.centers[i].clear()
        theirs.centers[i].update(enumerate(initial_centre(i, 3)))
    for x in rng.random((500, 3)):
        assert ours.learn_predict_one(list(x)) == theirs.learn_predict_one(dict(enumerate(x)))
    for i in range(4):
        np.testing.assert_allclose(ours.centres[i], [theirs.centers[i][f] for f in range(3)])


def test_segments_separate_distinct_behaviours() -> None:
    """Two kinds of listeners far apart in rank space end in different segments."""
    rng = np.random.default_rng(4)
    segmenter = Segmenter()
    low = [list(0.1 * rng.random(10)) for _ in range(300)]
    high = [list(0.9 + 0.1 * rng.random(10)) for _ in range(300)]
    for a, b in zip(low, high, strict=True):
        segmenter.learn_predict_one(a)
        segmenter.learn_predict_one(b)
    assert {segmenter.predict_one(x) for x in low}.isdisjoint(
        {segmenter.predict_one(x) for x in high}
    )
