"""The pure audio engine: decode, quality flags, resample, features."""

from workers.audio.decode import ChunkHeaders, decode_pcm, downmix, header_text, parse_headers
from workers.audio.features import FEATURE_NAMES, FeatureEngine, extract
from workers.audio.quality import quality_flags
from workers.audio.resample import resample

__all__ = [
    "FEATURE_NAMES",
    "ChunkHeaders",
    "FeatureEngine",
    "decode_pcm",
    "downmix",
    "extract",
    "header_text",
    "parse_headers",
    "quality_flags",
    "resample",
]
