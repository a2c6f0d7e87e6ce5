"""Encryption of model snapshots at rest: AES-256-GCM, with key rotation.

Keys come from the ``WORKERS_SNAPSHOT_KEYS`` setting as ``kid:base64key`` pairs separated
by commas. The first key encrypts; every listed key decrypts, so rotating is: put the new
key first, keep the old ones until every snapshot has been re-written by a checkpoint
(snapshots carry their key id), then drop them.

>>> ring = Keyring.parse("k2:" + "A" * 43 + "=,k1:" + "B" * 43 + "=")
>>> ring.active_kid, sorted(ring.keys)
('k2', ['k1', 'k2'])
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["NONCE_BYTES", "Keyring", "SnapshotKeyError"]

NONCE_BYTES = 12


class SnapshotKeyError(ValueError):
    """A key setting that cannot be used, or a snapshot no listed key opens."""


@dataclass(frozen=True)
class Keyring:
    active_kid: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, setting: str) -> Keyring:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for item in (part.strip() for part in setting.split(",")):
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            if not sep or not kid:
                raise SnapshotKeyError(
                    "snapshot keys are 'kid:base64key' pairs separated by commas"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise SnapshotKeyError(f"snapshot key {kid!r} is not base64") from exc
            if len(key) != 32:
                raise SnapshotKeyError(
                    f"snapshot key {kid!r} must be 32 bytes (AES-256), not {len(key)}"
                )
            keys[kid] = key
            order.append(kid)
        if not order:
            raise SnapshotKeyError("no snapshot key given")
        return cls(active_kid=order[0], keys=keys)

    def encrypt(self, plaintext: bytes, *, associated: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(nonce, plaintext, associated)
        return self.active_kid, nonce + sealed

    def decrypt(self, kid: str, sealed: bytes, *, associated: bytes) -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise SnapshotKeyError(
                f"snapshot was encrypted with key {kid!r}, which is not configured"
            )
        try:
            return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
        except InvalidTag as exc:
            raise SnapshotKeyError(
                f"snapshot does not open with key {kid!r} (tampered or wrong key)"
            ) from exc
