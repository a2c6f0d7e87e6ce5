"""Builders shared by unit and integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
import pytest

from workers.core.records import AUDIO_CHUNKS, LISTENING_EVENTS, Record
from workers.core.schemas import SCHEMAS
from workers.dev.client import audio_headers, pcm_bytes

TS = 1_764_000_000_000
OUTPUT_SCHEMAS = {
    "audio.features": "audio.features",
    "predictions.anomaly": "prediction.anomaly",
    "predictions.popularity": "prediction.popularity",
    "predictions.accounts": "prediction.accounts",
    "predictions.tracks": "prediction.tracks",
    "predictions.tags": "prediction.tags",
    "predictions.recommendations": "prediction.recommendations",
}


def needs(available: bool, what: str, install: str) -> None:
    """Skip a test whose outside program is missing, except under ``CI=true``: .ci/run
    installs every one, and a missing one must fail the run, not let it pass by skipping."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} missing in CI ({install})")
    pytest.skip(f"{what} not installed ({install})")


def tone(
    seconds: float = 0.5, sr: int = 44100, channels: int = 2, freq: float = 440.0
) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.repeat((0.3 * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1)


def chunk_record(
    tenant: str,
    stream: str,
    seq: int,
    *,
    sr: int = 44100,
    channels: int = 2,
    samples: np.ndarray | None = None,
    offset: int | None = None,
) -> Record:
    """A chunk record; its offset defaults to ``seq`` (one record per chunk)."""
    samples = tone(sr=sr, channels=channels) if samples is None else samples
    headers = audio_headers(
        tenant=tenant, stream=stream, seq=seq, sample_rate=sr, channels=channels
    )
    return Record(
        AUDIO_CHUNKS,
        0,
        seq if offset is None else offset,
        f"{tenant}/{stream}".encode(),
        pcm_bytes(samples),
        tuple(headers),
    )


def event_body(
    tenant: str,
    user: str,
    event_id: str,
    *,
    track: str = "t1",
    kind: str = "play",
    ts: int = TS,
    ms_played: int = 120_000,
) -> dict[str, object]:
    body: dict[str, object] = {
        "event_id": event_id,
        "tenant": tenant,
        "user_id": user,
        "track_id": track,
        "type": kind,
        "ts": ts,
    }
    if kind in ("play", "skip"):
        body["ms_played"] = ms_played
    return body


def event_record(tenant: str, user: str, event_id: str, offset: int = 0, **kw: object) -> Record:
    body = event_body(tenant, user, event_id, **kw)  # type: ignore[arg-type]
    return Record(LISTENING_EVENTS, 0, offset, f"{tenant}/{user}".encode(), orjson.dumps(body))


def schema_error(topic: str, value: dict[str, object]) -> str | None:
    return SCHEMAS.first_error(OUTPUT_SCHEMAS[topic], value)


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away certificate (also its own CA) and key for ``host``, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
