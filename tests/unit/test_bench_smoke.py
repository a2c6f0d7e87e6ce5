"""The benchmark commands run and write their figures (no timing is asserted here)."""

import io
from pathlib import Path

import orjson
from rich.console import Console

from workers.benchmarks import features


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
