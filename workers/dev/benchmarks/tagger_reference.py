"""The reference the tagger is measured against: musicnn's own code, on TensorFlow.

``reference_model`` builds ``musicnn.models.define_model`` in a TensorFlow graph and
restores the shipped checkpoint with TensorFlow's own saver, as ``musicnn.extractor``
does (without its per-call graph rebuild and its stale-feature bug for batches after the
first). ``reference_patches`` computes the input as ``musicnn.extractor.batch_data`` does,
with librosa. Used by the parity tests and the tagger benchmark only: TensorFlow is a
test-extra dependency, never the worker's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workers.core.tagging import locate_weights

__all__ = ["reference_model", "reference_patches"]

Floats = npt.NDArray[np.float32]


def reference_model(
    name: str = "MSD_musicnn", *, threads: int = 1
) -> Callable[[Floats], tuple[Floats, Floats]]:
    """patches (n, 187, 96) -> (tag probabilities (n, 50), penultimate layer (n, 200))."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # musicnn uses tf.compat.v1.layers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
            training = tf.compat.v1.placeholder(tf.bool)
            logits, *_, penultimate = models.define_model(x, training, name, 50)
            probabilities = tf.nn.sigmoid(logits)
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
        )
        session = tf.compat.v1.Session(graph=graph, config=config)
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(session, str(Path(locate_weights(name))) + "/")

    def run(patches: Floats) -> tuple[Floats, Floats]:
        p, e = session.run([probabilities, penultimate], {x: patches, training: False})
        return np.asarray(p, np.float32), np.asarray(e, np.float32)

    return run


def reference_patches(audio: Floats, *, n_frames: int = 187, saturate: bool = True) -> Floats:
    """musicnn's input for 16 kHz audio: librosa's mel spectrogram, float16, log-compressed,
    cut into consecutive patches (``musicnn.extractor.batch_data``).

    ``saturate=False`` is musicnn exactly: ``10000 · mel`` computed in float16 overflows to
    infinity on loud bands (mel power above 6.55), and the network is fed ``inf``.
    ``saturate=True`` stops at float16's largest value instead, as the worker does."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio, sr=16000, hop_length=256, n_fft=512, n_mels=96
    ).T.astype(np.float16)
    with np.errstate(over="ignore"):
        scaled = 10000 * mel
    if saturate:
        scaled = np.minimum(scaled, np.finfo(np.float16).max)
    logged = np.log10(scaled + np.float16(1))
    count = (logged.shape[0] - n_frames) // n_frames + 1
    patches = [logged[i * n_frames : (i + 1) * n_frames] for i in range(count)]
    return np.stack(patches).astype(np.float32)
