"""A tagging model: musicnn's pretrained weights, its labels, and how its output is read.

The weights ship inside this package (``weights/{name}.npz``: the 64 tensors the network
uses, converted once from musicnn 0.1.0's checkpoints by
``tools/convert_musicnn_weights.py``; ISC licence, © Music Technology Group, Universitat
Pompeu Fabra 2019, Jordi Pons: ``weights/LICENSE-musicnn.md``), and their SHA-256 is
checked at every load. ``weights_dir`` reads a TensorFlow checkpoint folder instead (the
``musicnn`` wheel's, or one a cluster ships another way). Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workers.core.tagging.checkpoint import read_bundle
from workers.core.tagging.labels import GENRES, LABELS, MOODS
from workers.core.tagging.network import Musicnn, Output

__all__ = ["SHIPPED", "TagModel", "WeightsMissing", "locate_weights", "shipped_weights"]

TOP = 3
#: the SHA-256 of the weights this package ships, by model (all from RELEASE)
SHIPPED = {
    "MSD_musicnn": "278953561522f01a3850ed5858eba4aa873db0758770636d4f1fffb7de52a21c",
    "MTT_musicnn": "7016b5d8aa9dbf95503eb786d9e4e47558ab6c96d2ec3850e175ebb00017fba4",
}
RELEASE = "musicnn-0.1.0"
_SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


class WeightsMissing(RuntimeError):
    """The model's weights are not installed."""


def shipped_weights(name: str) -> dict[str, npt.NDArray[np.generic]]:
    """The weights shipped for ``name``, checked against their SHA-256."""
    path = _SHIPPED_DIR / f"{name}.npz"
    if not path.exists():
        raise WeightsMissing(f"{path} is missing: reinstall the package")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHIPPED[name]:
        raise WeightsMissing(f"{path} does not match its SHA-256: reinstall the package")
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key.replace(".", "/", 1): archive[key] for key in archive.files}


def locate_weights(name: str) -> Path:
    """The folder of ``name``'s checkpoint inside the installed ``musicnn`` package."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(
            "musicnn's original checkpoints are not installed: pip install --no-deps musicnn==0.1.0"
        )
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
        if weights_dir is None:
            return cls(name, f"{name}/{RELEASE}", LABELS[name], Musicnn(shipped_weights(name)))
        if not (weights_dir / ".index").exists():
            raise WeightsMissing(f"no checkpoint in {weights_dir}")
        net = Musicnn(read_bundle(str(weights_dir) + "/"))
        return cls(name, f"{name}/{RELEASE}", LABELS[name], net)

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
