"""The pure audio engine: decode, quality flags, resample, features (block and streaming).

>>> import numpy as np
>>> from workers.core.audio import StreamingExtractor, StreamState
>>> extractor, state = StreamingExtractor(sr=22050), StreamState()
>>> state, features = extractor.step(state, np.zeros(11025, np.float32))
>>> features["rms"]
0.0
"""

from workers.core.audio.decode import decode_pcm, downmix
from workers.core.audio.features import FEATURE_NAMES, BlockExtractor
from workers.core.audio.quality import noisiest, quality_flags
from workers.core.audio.resample import resample
from workers.core.audio.streaming import StreamingExtractor, StreamState, extract

__all__ = [
    "FEATURE_NAMES",
    "BlockExtractor",
    "StreamState",
    "StreamingExtractor",
    "decode_pcm",
    "downmix",
    "extract",
    "noisiest",
    "quality_flags",
    "resample",
]
