"""Model snapshots: a small versioned header, then a zlib-compressed pickle.

With a keyring (``keyring.py``) the compressed pickle is encrypted with AES-256-GCM; the
header names the key and is authenticated with the ciphertext, so neither can be swapped.

>>> from workers.core.models.anomaly import AnomalyDetector
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

from workers.state.keyring import Keyring, SnapshotKeyError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "RIVER_VERSION",
    "SnapshotError",
    "dump",
    "load",
    "read_header",
]

RIVER_VERSION = version("river")
MAGIC = b"WKM"
FORMAT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (other format, other model kind, corrupt)."""


def dump(model: Any, *, kind: str, keyring: Keyring | None = None) -> bytes:
    fields: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "river": RIVER_VERSION,
        "kind": kind,
        "model": getattr(model, "version", type(model).__name__),
    }
    if keyring is not None:
        fields |= {"enc": "aes-256-gcm", "kid": keyring.active_kid}
    header = orjson.dumps(fields)
    body = zlib.compress(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), 3)
    if keyring is not None:
        _, body = keyring.encrypt(body, associated=header)
    return MAGIC + len(header).to_bytes(2, "big") + header + body


def read_header(blob: bytes) -> dict[str, Any]:
    if not blob.startswith(MAGIC) or len(blob) < 5:
        raise SnapshotError("not a model snapshot")
    size = int.from_bytes(blob[3:5], "big")
    header: dict[str, Any] = orjson.loads(blob[5 : 5 + size])
    return header


def load(
    blob: bytes, *, kind: str, keyring: Keyring | None = None, model_version: str | None = None
) -> Any:
    """Restore a snapshot; plain ones are still read when keys are set (they are encrypted
    at their next checkpoint), encrypted ones need the key they name. A snapshot written by
    another River version, or of another ``model_version``, is refused: its objects may
    not mean the same to this code."""
    header = read_header(blob)
    if header.get("format") != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format {header.get('format')} is not {FORMAT_VERSION}")
    if header.get("kind") != kind:
        raise SnapshotError(f"snapshot holds a {header.get('kind')!r} model, not {kind!r}")
    if header.get("river") != RIVER_VERSION:
        raise SnapshotError(f"snapshot of River {header.get('river')}, this is {RIVER_VERSION}")
    if model_version is not None and header.get("model") != model_version:
        raise SnapshotError(f"snapshot of model {header.get('model')!r}, not {model_version!r}")
    size = int.from_bytes(blob[3:5], "big")
    body = blob[5 + size :]
    if header.get("enc"):
        if keyring is None:
            raise SnapshotError("snapshot is encrypted and no snapshot keys are configured")
        try:
            body = keyring.decrypt(str(header.get("kid")), body, associated=blob[5 : 5 + size])
        except SnapshotKeyError as exc:
            raise SnapshotError(str(exc)) from exc
    try:
        return pickle.loads(zlib.decompress(body))
    except Exception as exc:
        raise SnapshotError(f"corrupt snapshot: {exc}") from exc
