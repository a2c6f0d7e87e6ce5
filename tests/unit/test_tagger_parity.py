"""The numpy tagger against musicnn's own TensorFlow graph and librosa preprocessing, on
audio rendered by sox and espeak-ng: every tag score within 1e-3, the same top 5."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import needs
from workers.core.tagging import TagModel, patches_of
from workers.dev import corpus
from workers.dev.benchmarks.tagger_reference import reference_model, reference_patches


@pytest.fixture(scope="module", autouse=True)
def _renderers() -> None:
    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")


CLIPS = [("music", 0), ("music", 1), ("music", 2), ("speech", 0), ("speech", 3)]


def streamed(audio: np.ndarray) -> np.ndarray:
    """The worker's path: framed chunk by chunk (an odd size: frames straddle chunks)."""
    return patches_of(audio, chunk=5997)


@pytest.mark.parametrize("name", ["MSD_musicnn", "MTT_musicnn"])
def test_tags_match_the_reference(name: str) -> None:
    reference = reference_model(name)
    model = TagModel.load(name)
    for kind, index in CLIPS:
        audio = getattr(corpus, kind)(index, sr=16000, seconds=7.0)
        ours = streamed(audio)
        theirs = reference_patches(audio)
        n = min(len(ours), len(theirs))
        assert n == 2
        want, want_embedding = reference(theirs[:n])
        got = model.run(ours[:n])
        assert np.abs(got.probabilities - want).max() <= 1e-3, (kind, index)
        for a, b in zip(got.probabilities, want, strict=True):
            assert list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5]), (kind, index)
        assert np.abs(got.embeddings - want_embedding).max() <= 1e-3


def test_musicnns_own_preprocessing_overflows_on_loud_bands() -> None:
    """Why the worker saturates: musicnn computes 10000·mel in float16, which is infinite
    above 6.55, and feeds that to the network (here, on ordinary sox music)."""
    audio = corpus.music(1, sr=16000, seconds=7.0)
    assert np.isinf(reference_patches(audio, saturate=False)).any()
    assert np.isfinite(streamed(audio)).all()
