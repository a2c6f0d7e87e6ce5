"""Audio brought to full rate through decoder-like stacks of transposed convolutions.

Test material for the AI-music flag, made from the argument of Afchar et al. (ISMIR 2025,
"A Fourier Explanation of AI-music Artifacts"): a transposed convolution of stride ``s``
is a zero-insertion followed by a convolution, so whatever is constant at its input (a
bias, the offset an activation leaves) comes out as a pattern that repeats every ``s``
output samples, and a stack of them repeats every product of the strides below it: small
spectral peaks at multiples of the rate divided by those products, set by the
architecture, not by the weights.

No generated music can be downloaded here, so real audio plays the latent. Its samples are
cut into ``S`` polyphase channels (``S`` the product of the strides, a lossless
reshaping), and grouped transposed convolutions put them back together, layer by layer:
each layer's kernel is the exact reassembly plus untrained random weights (its size a
multiple of the stride), a random bias per channel and a random activation (snake,
leaky tanh or soft clip). The result sounds like the input, carries the decoder's
periodic structure, and no two stacks share weights. ``FAMILIES`` holds several stride
sets; one (``held_out``) is kept out of the detector's tuning.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(0, 0.1, 48_000).astype(np.float32)
>>> y = decode_like(x, FAMILIES["encodec"], rng)
>>> y.shape, float(np.corrcoef(x, y)[0, 1]) > 0.95
((48000,), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FAMILIES", "Family", "decode_like"]

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    strides: tuple[int, ...]
    #: kernel size of each layer, as a multiple of its stride
    taps: int
    activation: str  # snake | tanh | softclip | mixed


FAMILIES = {
    f.name: f
    for f in (
        Family("encodec", (8, 5, 4, 2), 2, "snake"),  # EnCodec / SoundStream strides
        Family("dac", (8, 8, 4, 2), 2, "snake"),  # DAC at 44.1 kHz
        Family("hifigan", (8, 8, 2, 2), 2, "tanh"),  # HiFi-GAN V1
        Family("oobleck", (2, 4, 4, 8), 3, "snake"),  # a Stable-Audio-like VAE's tail
        # kept out of tuning: strides no published decoder uses, a different activation
        Family("held_out", (7, 5, 3, 3), 2, "softclip"),
    )
}


def _activate(x: npt.NDArray[np.float64], kind: str, rng: np.random.Generator) -> None:
    if kind == "mixed":
        kind = str(rng.choice(["snake", "tanh", "softclip"]))
    if kind == "snake":  # x + sin²(a·x)/a, per channel a
        a = rng.uniform(0.1, 0.5, (x.shape[0], 1))
        x += np.sin(a * x) ** 2 / a
    elif kind == "tanh":  # a leaky tanh, near the identity at audio levels
        g = rng.uniform(1.0, 4.0, (x.shape[0], 1))
        x[:] = 0.8 * x + 0.2 * np.tanh(g * x) / g
    else:  # soft clip with an offset knee
        k = rng.uniform(0.5, 2.0, (x.shape[0], 1))
        x[:] = x / (1.0 + np.abs(k * x)) * (1.0 + 0.1 * k)


def decode_like(
    audio: Floats,
    family: Family,
    rng: np.random.Generator,
    *,
    bias: float | None = None,
    weights: float | None = None,
) -> Floats:
    """``audio`` (mono, any rate) through a fresh random stack of ``family``.

    ``bias``: the spread of the per-channel biases, relative to the audio's RMS (drawn in
    0.003-0.03 when None); ``weights``: the spread of the random kernel weights around the
    exact reassembly (drawn in 0.01-0.06 when None).
    """
    total = int(np.prod(family.strides))
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1e-3
    bias = rms * (bias if bias is not None else float(rng.uniform(0.003, 0.03)))
    spread = weights if weights is not None else float(rng.uniform(0.01, 0.06))
    n = audio.size // total
    x = audio[: n * total].astype(np.float64).reshape(n, total).T.copy()  # (S, n)
    channels = total
    for stride in family.strides:
        out_channels = channels // stride
        x += rng.normal(0.0, bias, (channels, 1))
        _activate(x, family.activation, rng)
        k = family.taps
        # grouped: output channel c reassembles inputs c, c + C_out, … (phase-major, so
        # the last layer puts every sample back where it was)
        w = rng.normal(0.0, spread, (out_channels, stride, k * stride))
        w[:, np.arange(stride), np.arange(stride)] += 1.0
        grouped = x.reshape(stride, out_channels, -1).transpose(1, 0, 2)  # (C_out, s, n)
        steps = grouped.shape[2]
        y = np.zeros((out_channels, (steps + k - 1) * stride))
        for q in range(k):
            part = np.einsum("cij,cin->cnj", w[:, :, q * stride : (q + 1) * stride], grouped)
            y[:, q * stride : q * stride + steps * stride] += part.reshape(out_channels, -1)
        x = y[:, : steps * stride]
        channels = out_channels
    out = np.zeros(audio.size, np.float64)
    out[: x.shape[1]] = x[0]
    out -= out.mean()
    return out.astype(np.float32)
