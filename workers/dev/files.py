"""``python -m workers produce`` and ``python -m workers tail``: publish and watch as a tenant.

>>> import io
>>> rows = list(read_events(io.StringIO("event_id,user_id,track_id,type,ts,ms_played\\n"
...                                     "e1,u1,t1,play,1764000000000,31000\\n"), fmt="csv"))
>>> rows[0]["ms_played"], rows[0]["type"]
(31000, 'play')
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from workers.core.records import (
    ACCOUNTS,
    ANOMALY,
    AUDIO_CHUNKS,
    AUDIO_FEATURES,
    DEADLETTER,
    LISTENING_EVENTS,
    POPULARITY,
    TRACKS,
)
from workers.dev.client import audio_headers, pcm_bytes, start_producer

__all__ = ["COLUMNS", "INTEGER_FIELDS", "produce_audio", "produce_events", "read_events", "tail"]

INTEGER_FIELDS = ("ts", "ms_played", "track_ms")


def read_events(handle: IO[str], *, fmt: str) -> Iterator[dict[str, Any]]:
    """Listening events from JSON Lines or CSV (a header row names the fields)."""
    if fmt == "jsonl":
        for line in handle:
            if line.strip():
                yield json.loads(line)
        return
    for row in csv.DictReader(handle):
        event: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        for name in INTEGER_FIELDS:
            if name in event:
                event[name] = int(event[name])
        yield event


async def produce_audio(
    path: Path,
    *,
    bootstrap: str,
    auth: Mapping[str, Any] | None = None,
    tenant: str,
    stream: str,
    track: str | None = None,
    chunk_ms: int = 500,
    realtime: bool = True,
    console: Console | None = None,
) -> int:
    """Publish a WAV/FLAC file as a stream of chunks; in real time unless told otherwise."""
    import soundfile

    console = console or Console()
    samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    frames_per_chunk = max(1, sample_rate * chunk_ms // 1000)
    producer = await start_producer(bootstrap, auth=auth)
    started = time.monotonic()
    chunks = 0
    try:
        for seq, start in enumerate(range(0, samples.shape[0], frames_per_chunk)):
            if realtime:  # open loop: chunk n leaves at n chunk lengths, whatever came before
                await asyncio.sleep(max(0.0, started + seq * chunk_ms / 1000 - time.monotonic()))
            block = samples[start : start + frames_per_chunk]
            headers = audio_headers(
                tenant=tenant,
                stream=stream,
                seq=seq,
                sample_rate=sample_rate,
                channels=block.shape[1],
                track=track,
                ts=int(time.time() * 1000),
            )
            await producer.send(
                AUDIO_CHUNKS, pcm_bytes(block), key=f"{tenant}/{stream}".encode(), headers=headers
            )
            chunks += 1
        await producer.flush()
    finally:
        await producer.stop()
    console.print(
        f"published {chunks} chunks of {chunk_ms} ms ({samples.shape[0] / sample_rate:.1f} s, "
        f"{sample_rate} Hz, {samples.shape[1]} ch) to {AUDIO_CHUNKS} as {tenant}/{stream}"
    )
    return chunks


async def produce_events(
    path: Path,
    *,
    bootstrap: str,
    auth: Mapping[str, Any] | None = None,
    tenant: str,
    rate: float | None = None,
    console: Console | None = None,
) -> int:
    """Replay a CSV/JSONL file of listening events, as fast as possible or at ``rate``/s."""
    console = console or Console()
    fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    producer = await start_producer(bootstrap, auth=auth)
    started = time.monotonic()
    sent = 0
    try:
        with path.open() as handle:
            for event in read_events(handle, fmt=fmt):
                event.setdefault("tenant", tenant)
                event.setdefault("event_id", str(uuid.uuid4()))
                if rate:
                    await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
                key = f"{event['tenant']}/{event.get('user_id', '')}".encode()
                await producer.send(LISTENING_EVENTS, orjson.dumps(event), key=key)
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    console.print(f"published {sent} listening events from {path.name} to {LISTENING_EVENTS}")
    return sent


def _row(topic: str, value: bytes, headers: dict[str, str]) -> list[str]:
    if topic == DEADLETTER:
        return [
            headers.get("error", "?"),
            headers.get("source-topic", ""),
            headers.get("source-offset", ""),
            headers.get("error-detail", "")[:60],
        ]
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return ["(not JSON)", value[:40].decode("utf-8", "replace")]
    if topic == ANOMALY:
        return [
            body["tenant"],
            body["kind"],
            str(body["subject"]),
            str(body["ref"]),
            f"{body['score']:.3f}",
            "ANOMALY" if body["is_anomaly"] else "",
            ", ".join(body["reasons"]),
            f"{body['latency_ms']:.2f}",
        ]
    if topic == POPULARITY:
        return [
            body["tenant"],
            body["track_id"],
            str(body["plays"]),
            str(body["plays_previous"]),
            f"{body['predicted_plays_next']:.1f}",
            f"{body['latency_ms']:.2f}",
        ]
    if topic == ACCOUNTS:
        return [
            body["tenant"],
            body["user_id"],
            f"{body['score']:.3f}",
            "BOT" if body["is_bot"] else "",
            str(body["group"] or ""),
            ", ".join(body["evidence"][:3]),
            f"{body['latency_ms']:.2f}",
        ]
    if topic == TRACKS:
        return [
            body["tenant"],
            body["track_id"],
            f"{body['score']:.3f}",
            "PUSHED" if body["is_suspicious"] else "",
            f"{body['artificial_share']:.0%}",
            ", ".join(body["evidence"][:3]),
            f"{body['latency_ms']:.2f}",
        ]
    if topic == AUDIO_FEATURES:
        f, q = body["features"], body["quality"]
        return [
            body["tenant"],
            body["stream"],
            str(body["seq"]),
            f"{f['rms_db']:.1f}",
            f"{f['spectral_centroid']:.0f}",
            f"{f.get('lufs_momentary', 0):.1f}",
            " ".join(k for k, v in q.items() if v),
            f"{body['latency_ms']:.2f}",
        ]
    return [json.dumps(body)[:100]]


COLUMNS = {
    ANOMALY: ["tenant", "kind", "subject", "ref", "score", "", "reasons", "ms"],
    POPULARITY: ["tenant", "track", "plays", "previous", "predicted next", "ms"],
    ACCOUNTS: ["tenant", "listener", "score", "", "farm", "evidence", "ms"],
    TRACKS: ["tenant", "track", "score", "", "artificial", "evidence", "ms"],
    AUDIO_FEATURES: ["tenant", "stream", "seq", "rms dB", "centroid Hz", "LUFS", "quality", "ms"],
    DEADLETTER: ["error", "source", "offset", "detail"],
}


async def tail(
    topic: str,
    *,
    bootstrap: str,
    auth: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    limit: int | None = None,
    from_beginning: bool = False,
    plain: bool = False,
    rows: int = 20,
    out: IO[str] | None = None,
) -> int:
    """Follow ``topic`` as a live table (or plain lines); stop after ``limit`` messages."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        **(auth or {}),
    )
    await consumer.start()
    console = Console(file=out) if out is not None else Console()
    recent: deque[list[str]] = deque(maxlen=rows)
    seen = 0
    columns = COLUMNS.get(topic, ["value"])

    def table() -> Table:
        t = Table(title=f"{topic} — {seen} messages", title_justify="left")
        for column in columns:
            t.add_column(column)
        for row in recent:
            t.add_row(*row)
        return t

    live = None if plain else Live(table(), console=console, auto_refresh=False)
    try:
        if live is not None:
            live.start()
        while limit is None or seen < limit:
            batches = await consumer.getmany(timeout_ms=200)
            for m in (m for messages in batches.values() for m in messages):
                if tenant is None or (m.key or b"").startswith(f"{tenant}/".encode()):
                    headers = {k: v.decode("utf-8", "replace") for k, v in (m.headers or ())}
                    row = _row(topic, m.value or b"", headers)
                    seen += 1
                    if plain:
                        console.print(" | ".join(row), soft_wrap=True, highlight=False)
                    else:
                        recent.append(row)
                if limit is not None and seen >= limit:
                    break
            if live is not None:
                live.update(table(), refresh=True)
    finally:
        if live is not None:
            live.stop()
        await consumer.stop()
    return seen
