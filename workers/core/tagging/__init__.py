"""Music tagging with musicnn's shipped weights, in numpy: no TensorFlow at run time."""

from workers.core.tagging.checkpoint import CheckpointError, read_bundle
from workers.core.tagging.melspec import log_mel_frames
from workers.core.tagging.model import TagModel, WeightsMissing, locate_weights
from workers.core.tagging.network import Musicnn, Output
from workers.core.tagging.stream import (
    PATCH_FRAMES,
    Patch,
    TagState,
    frame,
    patch_seconds,
    patches_of,
)

__all__ = [
    "PATCH_FRAMES",
    "CheckpointError",
    "Musicnn",
    "Output",
    "Patch",
    "TagModel",
    "TagState",
    "WeightsMissing",
    "frame",
    "locate_weights",
    "log_mel_frames",
    "patch_seconds",
    "patches_of",
    "read_bundle",
]
