"""Model snapshots: a small versioned header, then a zlib-compressed pickle.

The header names the tenant, the model kind and version, the River version and, with a
keyring (``keyring.py``), the key: the compressed pickle is then encrypted with
AES-256-GCM and the whole header is its associated data, so neither the key id, nor the
tenant, nor the kind can be changed or the snapshot moved to another tenant's key without
the authentication failing.

With snapshot keys configured a snapshot is refused (``SnapshotRefused``: counted, and the
stored one is kept, never overwritten by a fresh model) when it is not encrypted, names
another tenant or kind, names an unknown key, or fails authentication. Without keys,
anyone who can write to Redis can plant a snapshot; it is unpickled with an allow-list
(River and this package's model classes, and the few builtins, collections and NumPy
constructors their pickles use), so a planted pickle cannot call ``os.system`` or any
other function outside that list (RELIABILITY.md says what remains).

A snapshot that is merely stale (another format, River version or model version) or
corrupt raises ``SnapshotError``: the tenant starts fresh and the next checkpoint replaces
it.

>>> from workers.core.models.anomaly import AnomalyDetector
>>> blob = dump(AnomalyDetector.create(), tenant="acme", kind="audio")
>>> type(load(blob, tenant="acme", kind="audio")).__name__
'AnomalyDetector'
"""

from __future__ import annotations

import inspect
import io
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
    "SnapshotRefused",
    "dump",
    "load",
    "read_header",
]

RIVER_VERSION = version("river")
MAGIC = b"WKM"
FORMAT_VERSION = 2

#: Classes of these packages may be rebuilt from a snapshot (classes only, no functions).
_CLASS_PACKAGES = ("river.", "workers.core.models.")
#: The other globals the models' pickles use, and nothing else.
_ALLOWED = {
    "builtins": {"tuple", "list", "dict", "set", "frozenset", "int", "float", "bool", "str",
                 "bytes", "bytearray", "complex", "slice", "range", "object"},
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "functools": {"partial"},
    "copyreg": {"_reconstructor"},
    "random": {"Random"},
    "numpy": {"dtype", "ndarray"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
}  # fmt: skip


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (other format, version or kind, corrupt)."""


class SnapshotRefused(SnapshotError):
    """A snapshot that must not be trusted (not encrypted while keys are set, another
    tenant's, an unknown key, failed authentication): kept in place, never overwritten."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_CLASS_PACKAGES):
            found = super().find_class(module, name)
            if inspect.isclass(found):
                return found
        elif name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise SnapshotRefused("forbidden-global", f"{module}.{name} is not allowed")


def dump(model: Any, *, tenant: str, kind: str, keyring: Keyring | None = None) -> bytes:
    fields: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "river": RIVER_VERSION,
        "tenant": tenant,
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
    try:
        header: dict[str, Any] = orjson.loads(blob[5 : 5 + size])
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"unreadable snapshot header: {exc}") from exc
    if not isinstance(header, dict):
        raise SnapshotError("unreadable snapshot header")
    return header


def load(
    blob: bytes,
    *,
    tenant: str,
    kind: str,
    keyring: Keyring | None = None,
    model_version: str | None = None,
) -> Any:
    """Restore a snapshot of ``tenant``'s ``kind`` model (checks in the module docstring)."""
    try:
        header = read_header(blob)
    except SnapshotError as exc:
        if keyring is not None:  # what cannot be verified is not trusted
            raise SnapshotRefused("unreadable", str(exc)) from exc
        raise
    if keyring is not None:
        if not header.get("enc"):
            raise SnapshotRefused("plaintext", "snapshot not encrypted while keys are set")
        if header.get("tenant") != tenant or header.get("kind") != kind:
            raise SnapshotRefused(
                "misplaced", f"holds {header.get('tenant')!r}/{header.get('kind')!r}"
            )
    if header.get("format") != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format {header.get('format')} is not {FORMAT_VERSION}")
    if header.get("tenant") != tenant or header.get("kind") != kind:
        raise SnapshotError(f"snapshot of {header.get('tenant')!r}/{header.get('kind')!r}")
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
            raise SnapshotRefused("unauthenticated", str(exc)) from exc
    try:
        return _Unpickler(io.BytesIO(zlib.decompress(body))).load()
    except SnapshotRefused:
        raise
    except Exception as exc:
        raise SnapshotError(f"corrupt snapshot: {type(exc).__name__}: {exc}") from exc
