"""Streaming feature extraction: frames continuous across chunks, state carried between them.

A stream's chunks arrive in ``seq`` order at any size. The samples a chunk leaves after
its last whole frame are carried into the next one, with the K-weighting filter state,
the loudness blocks and the last frame's mel spectrum, so a stream cut into chunks gives
the frames the whole signal would. A gap in ``seq`` must be reported by the caller, which
resets the carry instead of splicing audio across the gap.

>>> import numpy as np
>>> sr = 22050
>>> extractor = StreamingExtractor(sr=sr)
>>> state = StreamState()
>>> for seq in range(3):
...     chunk = np.sin(2 * np.pi * 440 * (np.arange(sr // 2) + seq * sr // 2) / sr)
...     state, features = extractor.step(state, chunk.astype(np.float32))
>>> state.frames_seen, round(features["spectral_centroid"] / 10) * 10
(61, 440)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from workers.core.audio.features import BlockExtractor, block_extractor
from workers.core.audio.loudness import (
    BLOCK_S,
    MOMENTARY_BLOCKS,
    SHORT_TERM_BLOCKS,
    k_weight,
    lufs,
)

__all__ = ["StreamState", "StreamingExtractor", "extract"]

_EMPTY = np.zeros(0, dtype=np.float32)
_HEADER = struct.Struct("<B q q i d i")  # version, seq, frames_seen, sr, block_sum, block_n
_FORMAT = 1


@dataclass(frozen=True)
class StreamState:
    """What one stream carries from chunk to chunk (≈10 KB serialised)."""

    seq: int = -1
    sr: int = 0
    frames_seen: int = 0
    carry: npt.NDArray[np.float32] = field(default_factory=lambda: _EMPTY)
    k_zi: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(4))
    block_sum: float = 0.0
    block_n: int = 0
    blocks: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    last_mel_db: npt.NDArray[np.float64] | None = None

    def to_bytes(self) -> bytes:
        mel = self.last_mel_db if self.last_mel_db is not None else np.zeros(0)
        parts = [
            self.carry.astype("<f4"),
            self.k_zi.astype("<f8"),
            self.blocks.astype("<f8"),
            mel.astype("<f8"),
        ]
        header = _HEADER.pack(
            _FORMAT, self.seq, self.frames_seen, self.sr, self.block_sum, self.block_n
        )
        sizes = struct.pack("<4I", *(p.size for p in parts))
        return header + sizes + b"".join(p.tobytes() for p in parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> StreamState:
        version, seq, frames_seen, sr, block_sum, block_n = _HEADER.unpack_from(blob)
        if version != _FORMAT:
            raise ValueError(f"stream state format {version} is not {_FORMAT}")
        offset = _HEADER.size
        sizes = struct.unpack_from("<4I", blob, offset)
        offset += 16
        arrays = []
        for size, dtype in zip(sizes, ("<f4", "<f8", "<f8", "<f8"), strict=True):
            count = size * np.dtype(dtype).itemsize
            arrays.append(np.frombuffer(blob, dtype=dtype, count=size, offset=offset).copy())
            offset += count
        carry, k_zi, blocks, mel = arrays
        return cls(
            seq=seq,
            sr=sr,
            frames_seen=frames_seen,
            carry=carry.astype(np.float32),
            k_zi=k_zi,
            block_sum=block_sum,
            block_n=block_n,
            blocks=blocks,
            last_mel_db=mel if mel.size else None,
        )


class StreamingExtractor:
    """Feature extraction for chunks of a stream at one model rate."""

    def __init__(self, *, sr: int) -> None:
        self.sr = sr
        self.block: BlockExtractor = block_extractor(sr)
        self._block_len = round(BLOCK_S * sr)

    def step(
        self, state: StreamState, samples: npt.NDArray[np.floating]
    ) -> tuple[StreamState, dict[str, float]]:
        """Features of one chunk (mono, at ``sr``) and the state for the next chunk."""
        if state.sr not in (0, self.sr):
            state = StreamState(seq=state.seq)
        chunk = np.asarray(samples, dtype=np.float32)
        x = np.concatenate((state.carry, chunk)) if state.carry.size else chunk
        n_fft, hop = self.block.n_fft, self.block.hop
        n_frames = 0 if x.shape[0] < n_fft else 1 + (x.shape[0] - n_fft) // hop
        if n_frames:
            block = x[: (n_frames - 1) * hop + n_fft]
            carry = x[n_frames * hop :]
        else:  # not one whole frame yet: describe the most recent (zero-padded) window
            block = np.concatenate((np.zeros(n_fft - x.shape[0], np.float32), x))
            carry = x
        features, last_mel_db = self.block.extract_block(block, previous_mel_db=state.last_mel_db)

        weighted, k_zi = k_weight(chunk, sr=self.sr, zi=state.k_zi)
        block_sum, block_n, blocks = self._loudness_blocks(state, weighted)
        features["lufs_momentary"] = _window_lufs(blocks, block_sum, block_n, MOMENTARY_BLOCKS)
        features["lufs_short_term"] = _window_lufs(blocks, block_sum, block_n, SHORT_TERM_BLOCKS)
        return replace(
            state,
            sr=self.sr,
            frames_seen=state.frames_seen + n_frames,
            carry=np.ascontiguousarray(carry[-(n_fft - 1) :] if n_frames == 0 else carry),
            k_zi=k_zi,
            block_sum=block_sum,
            block_n=block_n,
            blocks=blocks,
            last_mel_db=last_mel_db if n_frames else state.last_mel_db,
        ), features

    def _loudness_blocks(
        self, state: StreamState, weighted: npt.NDArray[np.float64]
    ) -> tuple[float, int, npt.NDArray[np.float64]]:
        """Fold K-weighted samples into 100 ms mean-square blocks (the last 30 are kept)."""
        squares = weighted * weighted
        block_sum, block_n = state.block_sum, state.block_n
        finished: list[float] = []
        i = 0
        while i < squares.shape[0]:
            take = min(self._block_len - block_n, squares.shape[0] - i)
            block_sum += float(squares[i : i + take].sum())
            block_n += take
            i += take
            if block_n == self._block_len:
                finished.append(block_sum / block_n)
                block_sum, block_n = 0.0, 0
        blocks = (
            np.concatenate((state.blocks, finished))[-SHORT_TERM_BLOCKS:]
            if finished
            else state.blocks
        )
        return block_sum, block_n, blocks


def _window_lufs(
    blocks: npt.NDArray[np.float64], block_sum: float, block_n: int, count: int
) -> float:
    """Loudness over the last ``count`` whole blocks (fewer at a stream's start)."""
    window = blocks[-count:]
    if window.size:
        return lufs(float(window.mean()))
    return lufs(block_sum / block_n) if block_n else lufs(0.0)


def extract(samples: npt.NDArray[np.floating], *, sr: int) -> dict[str, float]:
    """The full feature set of one mono block at ``sr``, as the first chunk of a stream.

    >>> import numpy as np
    >>> features = extract(np.zeros(11025, np.float32), sr=22050)
    >>> features["lufs_momentary"], len(features)
    (-120.0, 51)
    """
    return StreamingExtractor(sr=sr).step(StreamState(), samples)[1]
