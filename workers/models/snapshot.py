"""Model snapshots: a small versioned header, then a zlib-compressed pickle.

>>> from workers.models.anomaly import AnomalyDetector
>>> blob = dump(AnomalyDetector.create(), kind="audio")
>>> type(load(blob, kind="audio")).__name__
'AnomalyDetector'
"""

from __future__ import annotations

import pickle
import zlib
from importlib.metadata import version
from typing import Any

import orjson

RIVER_VERSION = version("river")
MAGIC = b"WKM"
FORMAT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (other format, other model kind, corrupt)."""


def dump(model: Any, *, kind: str) -> bytes:
    header = orjson.dumps(
        {
            "format": FORMAT_VERSION,
            "river": RIVER_VERSION,
            "kind": kind,
            "model": getattr(model, "version", type(model).__name__),
        }
    )
    body = zlib.compress(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), 3)
    return MAGIC + len(header).to_bytes(2, "big") + header + body


def read_header(blob: bytes) -> dict[str, Any]:
    if not blob.startswith(MAGIC) or len(blob) < 5:
        raise SnapshotError("not a model snapshot")
    size = int.from_bytes(blob[3:5], "big")
    header: dict[str, Any] = orjson.loads(blob[5 : 5 + size])
    return header


def load(blob: bytes, *, kind: str) -> Any:
    header = read_header(blob)
    if header.get("format") != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format {header.get('format')} is not {FORMAT_VERSION}")
    if header.get("kind") != kind:
        raise SnapshotError(f"snapshot holds a {header.get('kind')!r} model, not {kind!r}")
    size = int.from_bytes(blob[3:5], "big")
    try:
        return pickle.loads(zlib.decompress(blob[5 + size :]))
    except Exception as exc:
        raise SnapshotError(f"corrupt snapshot: {exc}") from exc
