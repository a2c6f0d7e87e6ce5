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
    assert written["bots"]["roc_auc"] == results["bots"]["roc_auc"]
    assert "_curves" not in written["bots"]
    assert len(written["accounts"]) == 3  # the tuned-on population and two held out
    for figures in written["popularity_baselines"].values():
        assert set(figures["mae"]) == {"model", "naive", "seasonal", "holt-winters"}
    for figures in written["accounts"].values():
        assert 0.0 <= figures["roc_auc"] <= 1.0 and figures["bots"] > 0
    for name in ("models-bots-roc.png", "models-audio-roc.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_features_benchmark_plots(tmp_path: Path) -> None:
    features.run(n=20, out_dir=tmp_path, console=Console(file=io.StringIO()))
    assert (tmp_path / "features.png").read_bytes().startswith(b"\x89PNG")
