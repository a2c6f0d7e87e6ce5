"""musicnn (Pons & Serra, 2019) in numpy: tag probabilities and embeddings of mel patches.

The architecture is ``musicnn/models.py::build_musicnn`` run for inference (batch
normalisation from its moving averages, no dropout):

- front end: batch-normalised input; two timbral convolutions (7×38 and 7×67 over time ×
  mel bands, 204 filters each) and three temporal ones (128, 64 and 32 frames × 1 band,
  51 filters each), each followed by ReLU, batch normalisation and a max over frequency;
- mid end: three 7-frame convolutions (64 filters), the last two residual;
- back end: max and mean over time of the 753 front- and mid-end features, a dense layer
  of 200 units (ReLU, batch normalisation: the *penultimate* layer, used as the
  embedding) and a dense layer of 50 logits.

Convolutions are matrix products over sliding windows (BLAS does the work); the affine
batch normalisation after each ReLU is applied after the max over frequency (a max of an
affine map is the affine map of the max, or of the min for a negative scale), which does
the same arithmetic on 59–96× fewer numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Musicnn", "Output"]

Array = npt.NDArray[np.float32]
_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default epsilon
N_FRAMES = 187


@dataclass(frozen=True, slots=True)
class Output:
    """For each patch: tag probabilities (n, 50) and the penultimate layer (n, 200)."""

    probabilities: Array
    embeddings: Array


def _affine(weights: dict[str, npt.NDArray[np.generic]], name: str) -> tuple[Array, Array]:
    """A batch normalisation as ``x * scale + shift``."""
    gamma = weights[f"{name}/gamma"].astype(np.float32)
    beta = weights[f"{name}/beta"].astype(np.float32)
    mean = weights[f"{name}/moving_mean"].astype(np.float32)
    variance = weights[f"{name}/moving_variance"].astype(np.float32)
    scale = gamma / np.sqrt(variance + np.float32(_EPS))
    return scale, beta - mean * scale


class Musicnn:
    """One network's weights, ready to run.

    >>> import numpy as np
    >>> net = Musicnn.random(seed=0)
    >>> out = net.run(np.zeros((2, 187, 96), np.float32))
    >>> out.probabilities.shape, out.embeddings.shape
    ((2, 50), (2, 200))
    """

    def __init__(self, weights: dict[str, npt.NDArray[np.generic]]) -> None:
        w = {k: v for k, v in weights.items() if "Adam" not in k}
        self.input_scale, self.input_shift = (
            float(a[0]) for a in _affine(w, "batch_normalization")
        )
        self.timbral = [self._conv(w, i, i + 1) for i in (0, 1)]
        self.temporal = [self._conv(w, i, i + 1) for i in (2, 3, 4)]
        self.midend = [self._conv(w, i, i + 1) for i in (5, 6, 7)]
        self.pool_bn = _affine(w, "batch_normalization_9")
        self.dense = (w["dense/kernel"].astype(np.float32), w["dense/bias"].astype(np.float32))
        self.dense_bn = _affine(w, "batch_normalization_10")
        self.out = (w["dense_1/kernel"].astype(np.float32), w["dense_1/bias"].astype(np.float32))
        self.n_tags = self.out[0].shape[1]

    @staticmethod
    def _conv(
        w: dict[str, npt.NDArray[np.generic]], conv: int, bn: int
    ) -> tuple[tuple[int, int], Array, Array, Array, Array]:
        name = "conv2d" if conv == 0 else f"conv2d_{conv}"
        kernel = w[f"{name}/kernel"].astype(np.float32)  # (time, freq, 1, filters)
        kt, kf, _, filters = kernel.shape
        scale, shift = _affine(w, f"batch_normalization_{bn}")
        matrix = np.ascontiguousarray(kernel.reshape(kt * kf, filters))
        return (kt, kf), matrix, w[f"{name}/bias"].astype(np.float32), scale, shift

    @classmethod
    def random(cls, *, seed: int, n_tags: int = 50) -> Musicnn:
        """A network of the right shapes with random weights (for tests of the plumbing)."""
        rng = np.random.default_rng(seed)
        shapes = {
            "conv2d": (7, 38, 1, 204),
            "conv2d_1": (7, 67, 1, 204),
            "conv2d_2": (128, 1, 1, 51),
            "conv2d_3": (64, 1, 1, 51),
            "conv2d_4": (32, 1, 1, 51),
            "conv2d_5": (7, 561, 1, 64),
            "conv2d_6": (7, 64, 1, 64),
            "conv2d_7": (7, 64, 1, 64),
            "dense": (1506, 200),
            "dense_1": (200, n_tags),
        }
        w: dict[str, npt.NDArray[np.generic]] = {}
        for name, shape in shapes.items():
            w[f"{name}/kernel"] = rng.normal(0, 0.05, shape).astype(np.float32)
            w[f"{name}/bias"] = np.zeros(shape[-1], np.float32)
        sizes = [1, 204, 204, 51, 51, 51, 64, 64, 64, 1506, 200]
        for i, size in enumerate(sizes):
            name = "batch_normalization" if i == 0 else f"batch_normalization_{i}"
            w[f"{name}/gamma"] = np.ones(size, np.float32)
            w[f"{name}/beta"] = np.zeros(size, np.float32)
            w[f"{name}/moving_mean"] = np.zeros(size, np.float32)
            w[f"{name}/moving_variance"] = np.ones(size, np.float32)
        return cls(w)

    def run(self, patches: Array) -> Output:
        """Tags and embeddings of ``patches`` (n, 187, 96): log-mel frames × bands."""
        x = np.asarray(patches, np.float32) * np.float32(self.input_scale) + np.float32(
            self.input_shift
        )
        n, frames, _ = x.shape
        padded = np.pad(x, ((0, 0), (3, 3), (0, 0)))
        front = [_pooled(padded, block, frames) for block in self.timbral]
        for block in self.temporal:
            (kt, _), *_ = block
            before = (kt - 1) // 2  # TensorFlow's "same": the extra pad goes after
            front.append(
                _pooled(np.pad(x, ((0, 0), (before, kt - 1 - before), (0, 0))), block, frames)
            )
        features = np.concatenate(front, axis=2)  # (n, frames, 561)
        layers = [features]
        previous = features
        for i, block in enumerate(self.midend):
            out = _dense_conv(np.pad(previous, ((0, 0), (3, 3), (0, 0))), block, frames)
            previous = out if i == 0 else out + previous
            layers.append(previous)
        midend = np.concatenate(layers, axis=2)  # (n, frames, 753)
        pooled = np.stack((midend.max(axis=1), midend.mean(axis=1)), axis=2).reshape(n, -1)
        pooled = pooled * self.pool_bn[0] + self.pool_bn[1]
        hidden = np.maximum(pooled @ self.dense[0] + self.dense[1], 0.0)
        embeddings = hidden * self.dense_bn[0] + self.dense_bn[1]
        logits = embeddings @ self.out[0] + self.out[1]
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        return Output(probabilities.astype(np.float32), embeddings.astype(np.float32))


def _pooled(
    padded: Array, block: tuple[tuple[int, int], Array, Array, Array, Array], frames: int
) -> Array:
    """A front-end block: convolution (valid over the padded input), ReLU, batch
    normalisation and the max over frequency, as (n, frames, filters)."""
    (kt, kf), matrix, bias, scale, shift = block
    n = padded.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kt, kf), axis=(1, 2))
    windows = windows[:, :frames]  # (n, frames, bands, kt, kf)
    bands = windows.shape[2]
    z = windows.reshape(n * frames * bands, kt * kf) @ matrix  # (…, filters)
    z = z.reshape(n, frames, bands, -1)
    high = np.maximum(z.max(axis=2) + bias, 0.0)
    low = np.maximum(z.min(axis=2) + bias, 0.0)
    pooled: Array = np.where(scale >= 0, high, low) * scale + shift
    return pooled


def _dense_conv(
    padded: Array, block: tuple[tuple[int, int], Array, Array, Array, Array], frames: int
) -> Array:
    """A mid-end layer: a convolution over 7 frames × all features, ReLU, normalisation."""
    (kt, kf), matrix, bias, scale, shift = block
    n = padded.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(padded, kt, axis=1)[:, :frames]
    # windows: (n, frames, features, kt) -> rows of kt × features in kernel order
    rows = windows.transpose(0, 1, 3, 2).reshape(n * frames, kt * kf)
    z = np.maximum(rows @ matrix + bias, 0.0)
    out: Array = (z * scale + shift).reshape(n, frames, -1)
    return out
