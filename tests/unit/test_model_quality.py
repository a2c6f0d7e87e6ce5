"""The listening models' quality, pinned on a population they were not tuned on.

One seeded day of ``holdout.MarketPopulation`` (400 people of every hard kind, 94 farm
accounts of four kinds) through the production ``ListeningStep`` and the in-memory store,
read as a consumer reads ``predictions.accounts`` and ``predictions.tracks``. The run is
deterministic; the floors sit below what the frozen design measures here (in the comments)
by a margin a clear regression would cross: a detector at AUC 0.6, one that convicts on
volume, a farm kind missed, or groups that name each member differently all fail.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workers.dev.benchmarks import accounts
from workers.dev.holdout import MarketPopulation


@pytest.fixture(scope="module")
def market() -> dict[str, Any]:
    spec = accounts.Spec(
        "market",
        True,
        lambda: MarketPopulation("eval", seed=21, hours=24, people=400),
        hours=24,
    )
    return asyncio.run(accounts.evaluate(spec))


def test_listeners_beat_their_best_single_signal(market: dict[str, Any]) -> None:
    assert market["bots"] >= 90 and market["listeners"] >= 450
    assert market["roc_auc"] >= 0.97  # 0.993
    assert market["roc_auc"] >= market["best_feature_auc"] - 0.01  # best feature 0.890
    assert market["bots_flagged"] >= 0.85  # 0.979
    assert market["people_flagged"] <= 0.02  # 0.003
    assert market["model_bots_flagged_at_1pct_people"] >= 0.8  # 0.979


def test_every_farm_kind_is_caught_and_hard_people_are_not(market: dict[str, Any]) -> None:
    for farm, f in market["farms"].items():  # blatant 4/4, stuffer 10/10, sync 30/30, thin 48/50
        assert f["flagged"] >= 0.7 * f["accounts"], farm
    sync = market["farms"]["sync-farm"]
    assert sync["sharing_one_group"] >= 0.7 * sync["accounts"]  # 28 of 30 name one group
    for kind, k in market["by_kind"].items():
        if not k["bot"]:  # power listeners, loopers, discoverers, night owls, sleepers: 1 of 388
            assert k["flagged"] <= max(1, 0.1 * k["accounts"]), kind


def test_pushed_tracks_are_found(market: dict[str, Any]) -> None:
    tracks = market["tracks"]
    assert tracks["pushed"] >= 40
    assert tracks["roc_auc"] >= 0.85  # 0.897
    assert tracks["roc_auc"] >= tracks["best_feature_auc"]  # near-30 s share 0.815
    assert tracks["others_flagged"] <= 0.01  # 0.004


def test_popularity_beats_naive_and_the_seasonal_models_on_held_out_charts() -> None:
    """Two days of ``charts.ChartLoad`` (a daily cycle, launches, fades; 60 tracks) through
    the listening step: the published forecasts against the trivial and River baselines on
    the same windows. Below the issue's 20 % target (BENCHMARKS.md says why); pinned so a
    forecaster that falls back behind naive fails."""
    from workers.dev.benchmarks import popularity

    charts = popularity.populations(quick=True)["charts (held out)"]
    result = popularity.evaluate(charts())
    mae = result["mae"]
    assert result["predictions"] >= 600  # 819
    assert result["best_trivial"] == "naive"
    assert result["gain_vs_best_trivial"] >= 0.03  # 0.066
    assert mae["model"] < min(mae["seasonal"], mae["holt-winters"], mae["snarimax"])


def test_audio_faults_are_found_in_the_held_out_corpus() -> None:
    """The held-out half of the sox and espeak-ng corpus (other instruments, voices and
    faults than the thresholds were set on) through the production audio step."""
    from tests.helpers import needs
    from workers.dev import corpus
    from workers.dev.benchmarks import audio_corpus

    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    chunks = list(corpus.chunks(streams=24, seconds=20.0, seed=1, first=24))
    result = asyncio.run(audio_corpus.evaluate(chunks))
    recall, false_flags = result["recall_by_kind"], result["false_flags"]
    assert result["faulty"] >= 120  # 143
    for kind in ("music", "speech"):
        assert recall[f"clipping in {kind}"] == recall[f"dead_air in {kind}"] == 1.0
        assert recall[f"noise_burst in {kind}"] >= 0.9  # 1.00 (about 0.6 before the sub-blocks)
    assert recall["dropout in music"] == 1.0
    assert recall["dropout in speech"] >= 0.5  # 0.69 of 13 (0.31 with the two-edge rule)
    assert false_flags["music"] <= 0.01  # 0.0
    assert false_flags["speech"] <= 0.04  # 0.022 (0.070 with the two-edge rule)
    assert max(result["model_alarms_on_clean"].values()) <= 0.01  # 0.0
    assert result["roc_auc"] >= 0.94  # 0.965 (0.936 before)
    clean = [c for c in chunks if c.fault is None]
    trials = audio_corpus.dropout_trials(clean, per_chunk=1, seed=8)
    assert trials["recall"]["music"] >= 0.95  # 0.98 of 404
    assert trials["recall"]["speech"] >= 0.65  # 0.75 of 413 (about 0.58 with the two-edge rule)


def test_ai_music_is_flagged_on_held_out_clips_and_real_audio_is_not() -> None:
    """Clips 4-5 (never tuned on), each as it is, resampled clean, and through a random
    stack of the held-out decoder family (strides no published decoder uses) and of DAC's,
    under four transformations, chunk by chunk through the tagger's accumulation."""
    from tests.helpers import needs
    from workers.dev import corpus
    from workers.dev.benchmarks import heard

    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    result = heard.ai_flag(first=4, count=2, families=("held_out", "dac"), seed=11)
    for kind in ("music", "speech"):
        assert result["real"][kind]["streams"] == 16
        assert result["real"][kind]["flagged"] == 0.0  # max evidence 2.3 (music), 0.2
    speech = result["families"]["held_out"]["speech"]
    assert speech["auc_30s"] >= 0.95 and speech["flagged"] >= 0.9  # 1.000, 100 %
    assert speech["auc_10s"] >= 0.95  # 1.000: the verdict does not need the whole stream
    for kind in ("music", "speech"):
        dac = result["families"]["dac"][kind]
        assert dac["auc_30s"] >= 0.95 and dac["flagged"] >= 0.75  # 1.000, 100 %


def test_stems_track_known_shares_on_held_out_mixtures() -> None:
    """Mixtures 6-8 (voices, instruments, tempi and shares the design never saw)."""
    from tests.helpers import needs
    from workers.dev import corpus
    from workers.dev.benchmarks import heard

    needs(corpus.available(), "sox and espeak-ng", "apt-get install sox espeak-ng")
    result = heard.stems(first=6, count=3)
    assert result["voice_higher_pairs"] == 3
    assert result["mae"]["vocals"] <= 0.15  # 0.096
    assert result["mae"]["harmonic"] <= 0.15  # 0.087
    assert result["mae"]["percussive"] <= 0.2  # 0.139
