"""A stream's tagging state: 3 s patches framed across chunks, and its running aggregate.

``frame`` is pure: state and 16 kHz samples in, the new state and the patches completed
out. Patches are consecutive and do not overlap (musicnn's own default): patch ``p``
covers frames ``187·p`` to ``187·p + 186``, about 2.99 s of the stream from 2.99·p s.
Only every ``every``-th patch is handed on for tagging; the others are framed and
dropped, which bounds the network's cost per stream.

>>> import numpy as np
>>> state, patches = frame(TagState(), np.zeros(16000 * 7, np.float32), every=1)
>>> [p.index for p in patches], state.frames.shape
([0, 1], (63, 96))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from workers.core.tagging.artifacts import SpectrumState
from workers.core.tagging.melspec import HOP, N_MELS, SR, log_mel_frames

__all__ = ["PATCH_FRAMES", "Patch", "TagState", "frame", "patch_seconds", "patches_of"]

PATCH_FRAMES = 187
_HEADER = struct.Struct("<B q B q q I I I")  # fmt, seq, started, patches, tagged, sizes…
_FORMAT = 3  # 3 adds the stems' sums and the spectral floor; 2 is read as without them


def patch_seconds(index: int) -> tuple[float, float]:
    """Where patch ``index`` lies in its stream, in seconds from the stream's start.

    >>> patch_seconds(1)
    (2.992, 5.984)
    """
    step = PATCH_FRAMES * HOP / SR
    return round(index * step, 3), round((index + 1) * step, 3)


@dataclass(frozen=True, slots=True)
class Patch:
    index: int
    frames: npt.NDArray[np.float32]  # (187, 96)


@dataclass(frozen=True)
class TagState:
    """What a stream carries from chunk to chunk: at most 511 samples, at most 186 frames
    (float16, exactly as computed), counts, the sums of its tagged patches (tags,
    embeddings, stem energies), and its spectral floor at its own rate (the AI flag's)."""

    seq: int = -1
    started: bool = False
    carry: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    frames: npt.NDArray[np.float16] = field(
        default_factory=lambda: np.zeros((0, N_MELS), np.float16)
    )
    patches: int = 0
    tagged: int = 0
    tag_sums: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    embedding_sums: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    #: the chunks' ``track`` header (the embedding is stored under it), or ""
    track: str = ""
    stem_sums: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    spectrum: SpectrumState = field(default_factory=SpectrumState)

    def with_tagged(
        self,
        probabilities: npt.NDArray[np.float32],
        embeddings: npt.NDArray[np.float32],
        stems: npt.NDArray[np.float64] | None = None,
    ) -> TagState:
        """The state after ``len(probabilities)`` more patches were tagged (``stems``: their
        stem energies, one row each)."""
        if not len(probabilities):
            return self
        tags = self.tag_sums if self.tag_sums.size else np.zeros(probabilities.shape[1])
        embedding = (
            self.embedding_sums if self.embedding_sums.size else np.zeros(embeddings.shape[1])
        )
        return replace(
            self,
            tagged=self.tagged + len(probabilities),
            tag_sums=tags + probabilities.sum(axis=0, dtype=np.float64),
            embedding_sums=embedding + embeddings.sum(axis=0, dtype=np.float64),
            stem_sums=self.stem_sums + (stems.sum(axis=0) if stems is not None else 0.0),
        )

    def mean_tags(self) -> npt.NDArray[np.float64]:
        return self.tag_sums / max(self.tagged, 1)

    def mean_embedding(self) -> npt.NDArray[np.float64]:
        return self.embedding_sums / max(self.tagged, 1)

    def to_bytes(self) -> bytes:
        parts = (
            self.carry.astype("<f4").tobytes(),
            self.frames.astype("<f2").tobytes(),
            self.tag_sums.astype("<f8").tobytes(),
            self.embedding_sums.astype("<f8").tobytes(),
        )
        header = _HEADER.pack(
            _FORMAT,
            self.seq,
            int(self.started),
            self.patches,
            self.tagged,
            self.carry.size,
            self.frames.shape[0],
            self.tag_sums.size,
        )
        track = self.track.encode()
        sizes = struct.pack("<II", self.embedding_sums.size, len(track))
        spectrum = self.spectrum.to_bytes()
        extra = self.stem_sums.astype("<f8").tobytes() + struct.pack("<I", len(spectrum))
        return header + sizes + b"".join(parts) + track + extra + spectrum

    @classmethod
    def from_bytes(cls, blob: bytes) -> TagState:
        fmt, seq, started, patches, tagged, n_carry, n_frames, n_tags = _HEADER.unpack_from(blob)
        if fmt not in (2, _FORMAT):
            raise ValueError(f"tag state format {fmt} is not {_FORMAT}")
        offset = _HEADER.size
        n_embedding, n_track = struct.unpack_from("<II", blob, offset)
        offset += 8
        carry = np.frombuffer(blob, "<f4", n_carry, offset).astype(np.float32)
        offset += 4 * n_carry
        frames = np.frombuffer(blob, "<f2", n_frames * N_MELS, offset)
        offset += 2 * n_frames * N_MELS
        tags = np.frombuffer(blob, "<f8", n_tags, offset).astype(np.float64)
        offset += 8 * n_tags
        embedding = np.frombuffer(blob, "<f8", n_embedding, offset).astype(np.float64)
        offset += 8 * n_embedding
        track = blob[offset : offset + n_track].decode()
        offset += n_track
        stems, spectrum = np.zeros(3), SpectrumState()
        if fmt == _FORMAT:
            stems = np.frombuffer(blob, "<f8", 3, offset).astype(np.float64)
            (n_spectrum,) = struct.unpack_from("<I", blob, offset + 24)
            start = offset + 28
            spectrum = SpectrumState.from_bytes(blob[start : start + n_spectrum])
        return cls(
            seq=seq,
            started=bool(started),
            carry=carry,
            frames=frames.reshape(n_frames, N_MELS).astype(np.float16),
            patches=patches,
            tagged=tagged,
            tag_sums=tags,
            embedding_sums=embedding,
            track=track,
            stem_sums=stems,
            spectrum=spectrum,
        )


def frame(
    state: TagState, samples: npt.NDArray[np.float32], *, every: int
) -> tuple[TagState, list[Patch]]:
    """Frame ``samples`` (mono, 16 kHz) after ``state``; the patches to tag, in order."""
    new, carry = log_mel_frames(samples, carry=state.carry if state.started else None)
    frames = np.concatenate((state.frames.astype(np.float32), new)) if state.frames.size else new
    complete = frames.shape[0] // PATCH_FRAMES
    patches = [
        Patch(state.patches + i, frames[i * PATCH_FRAMES : (i + 1) * PATCH_FRAMES])
        for i in range(complete)
        if (state.patches + i) % every == 0
    ]
    rest = frames[complete * PATCH_FRAMES :].astype(np.float16)
    return replace(
        state, started=True, carry=carry, frames=rest, patches=state.patches + complete
    ), patches


def patches_of(samples: npt.NDArray[np.float32], *, chunk: int = 8000) -> npt.NDArray[np.float32]:
    """Every window of a whole clip (mono, 16 kHz), framed as a stream of ``chunk``-sample
    chunks would be: (n, 187, 96).

    >>> patches_of(np.zeros(16000 * 7, np.float32)).shape
    (2, 187, 96)
    """
    state, found = TagState(), []
    for start in range(0, samples.shape[0], chunk):
        state, patches = frame(state, samples[start : start + chunk], every=1)
        found += [p.frames for p in patches]
    return np.stack(found) if found else np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)
