"""The benchmark commands run and write their figures (no timing is asserted here)."""

import io
from pathlib import Path

import orjson
from rich.console import Console

from workers.dev.benchmarks import features


def test_features_benchmark_writes_its_figures(tmp_path: Path) -> None:
    results = features.run(n=40, out_dir=tmp_path, console=Console(file=io.StringIO()))
    written = orjson.loads((tmp_path / "features.json").read_bytes())
    assert written["stats"]["ours"]["n"] == 40
    for key in (
        "speedup_vs_librosa_p50",
        "chunks_per_second_per_core",
        "first_chunk_after_warmup_ms",
    ):
        assert written[key] == results[key] > 0


def test_models_benchmark_writes_figures_and_plots(tmp_path: Path) -> None:
    from workers.dev.benchmarks import models

    results = models.run(quick=True, out_dir=tmp_path, console=Console(file=io.StringIO()))
    written = orjson.loads((tmp_path / "models.json").read_bytes())
    assert written["audio"]["roc_auc"] == results["audio"]["roc_auc"]
    assert "_curves" not in written["audio"]
    # three populations tuned on, two held out
    assert [f["held_out"] for f in written["accounts"].values()] == [False] * 3 + [True] * 3
    for figures in written["popularity_baselines"].values():
        assert set(figures["mae"]) == {"model", "naive", "seasonal", "holt-winters", "snarimax"}
        assert figures["predictions"] > 0
    for figures in written["accounts"].values():
        assert figures["bots"] > 0 and figures["best_feature"] in figures["feature_aucs"]
    assert (tmp_path / "models-audio-roc.png").read_bytes().startswith(b"\x89PNG")


def test_features_benchmark_plots(tmp_path: Path) -> None:
    features.run(n=20, out_dir=tmp_path, console=Console(file=io.StringIO()))
    assert (tmp_path / "features.png").read_bytes().startswith(b"\x89PNG")


async def test_the_recommendation_benchmark_measures_every_ranking() -> None:
    """The hit-rate harness on a small catalogue (vectors instead of rendered audio)."""
    import time

    import numpy as np

    from workers.dev.benchmarks.recommend import hit_rates
    from workers.dev.benchmarks.recommend_data import CLUSTERS, Catalogue, sessions

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(CLUSTERS), 16))
    tracks = [f"{name}-{j}" for name in CLUSTERS for j in range(6)]
    cluster = {t: i // 6 for i, t in enumerate(tracks)}
    cat = Catalogue(
        tracks,
        cluster,
        {t: centres[cluster[t]] + 0.1 * rng.normal(size=16) for t in tracks},
        new={t for t in tracks if t.endswith("-5")},
    )
    start = int(time.time() * 1000) - 86_400_000
    result = await hit_rates(cat, sessions(cat, 40, start_ts=start, seed=1), (0.3,))
    assert set(result["hit_rate_at_10"]) == {
        "0.3",
        "content only",
        "collaborative only",
        "popular now",
    }
    assert result["listeners"] == 40 and all(
        0.0 <= v <= 1.0 for v in result["hit_rate_at_10"].values()
    )


def test_similarity_and_segment_figures() -> None:
    import numpy as np

    from workers.dev.benchmarks.accounts import segment_figures
    from workers.dev.benchmarks.similarity import same_source_first

    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1])
    figures = same_source_first(vectors, labels, np.array([False, False, True, True]))
    assert figures["nearest_is_same_source"] == 1.0 == figures["speech_nearest_is_same_source"]
    seg = segment_figures([0, 0, 1, 1, None], ["bot", "bot", "person", "person", "person"])
    assert seg["purity"] == 1.0 and abs(seg["nmi"] - 1.0) < 1e-9
