"""A tagging model: musicnn's shipped weights, its labels, and how its output is read.

The weights come from the ``musicnn`` wheel (installed without its dependencies, it is
only files to us: ISC licence, © Jordi Pons); ``weights_dir`` points elsewhere for
clusters that ship them another way. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workers.core.tagging.checkpoint import read_bundle
from workers.core.tagging.labels import GENRES, LABELS, MOODS
from workers.core.tagging.network import Musicnn, Output

__all__ = ["TagModel", "WeightsMissing", "locate_weights"]

TOP = 3


class WeightsMissing(RuntimeError):
    """The model's weights are not installed."""


def locate_weights(name: str) -> Path:
    """The folder of ``name``'s checkpoint inside the installed ``musicnn`` package."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing("the musicnn weights are not installed: pip install --no-deps musicnn")
    return Path(next(iter(spec.submodule_search_locations))) / name


@dataclass(frozen=True)
class TagModel:
    name: str
    version: str
    labels: tuple[str, ...]
    net: Musicnn

    @classmethod
    def load(cls, name: str = "MSD_musicnn", *, weights_dir: Path | None = None) -> TagModel:
        if name not in LABELS:
            raise ValueError(f"unknown tagging model {name!r}; one of {sorted(LABELS)}")
        folder = weights_dir or locate_weights(name)
        if not (folder / ".index").exists():
            raise WeightsMissing(f"no checkpoint in {folder}")
        try:
            release = importlib.metadata.version("musicnn")
        except importlib.metadata.PackageNotFoundError:
            release = "local"
        net = Musicnn(read_bundle(str(folder) + "/"))
        return cls(name, f"{name}/musicnn-{release}", LABELS[name], net)

    def run(self, patches: npt.NDArray[np.float32]) -> Output:
        return self.net.run(patches)

    def describe(self, probabilities: npt.NDArray[np.floating]) -> dict[str, object]:
        """Tag scores (name → 0–1) and the top genres and moods, strongest first.

        >>> from workers.core.tagging.network import Musicnn
        >>> model = TagModel("MSD_musicnn", "test", LABELS["MSD_musicnn"], Musicnn.random(seed=0))
        >>> scores = np.zeros(50); scores[9] = 0.8; scores[49] = 0.6
        >>> d = model.describe(scores)
        >>> d["top_genres"][0], d["top_moods"][0]
        ({'tag': 'jazz', 'score': 0.8}, {'tag': 'happy', 'score': 0.6})
        """
        scores = [round(float(p), 4) for p in probabilities]
        order = np.argsort(-np.asarray(probabilities), kind="stable")
        genres = [i for i in order if self.labels[i] in GENRES][:TOP]
        moods = [i for i in order if self.labels[i] in MOODS][:TOP]
        return {
            "tags": dict(zip(self.labels, scores, strict=True)),
            "top_genres": [{"tag": self.labels[i], "score": scores[i]} for i in genres],
            "top_moods": [{"tag": self.labels[i], "score": scores[i]} for i in moods],
        }
