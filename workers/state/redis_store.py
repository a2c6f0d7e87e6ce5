"""The Redis state store: Lua scripts (atomic, one round trip) and pipelined batches.

Works the same on one server and on Redis Cluster (``RedisCluster`` client): every
multi-key script touches one tenant's keys only, all under the tenant's hash tag (one
slot), and a batch's pipeline is split by node. With ``wait_replicas``, every write is
followed by ``WAIT`` on the node that took it, on the same connection, so a change counts
as done only once that many replicas have it: a failover (a replica promoted after its
master died) then loses nothing the worker went on from.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from workers.core.errors import Reason
from workers.core.listening_state import ListeningState, ListeningUpdate
from workers.core.position import Position
from workers.core.records import LISTENING_EVENTS
from workers.state import keys, scripts
from workers.state.listening_command import ListeningCommands
from workers.state.listening_reply import decode_listening
from workers.state.protocol import (
    DAY_S,
    GONE_FOR_MS,
    Embedding,
    KeptChunk,
    Refused,
    StateLimits,
    StateUnavailable,
    StreamSaved,
)
from workers.state.redis_client import is_transient, pack_with_hiredis, translated

__all__ = ["RedisStore", "is_transient"]


class RedisStore:
    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        limits: StateLimits | None = None,
        incarnation: str | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> None:
        self._client = client
        pack_with_hiredis(client)  # new connections of this client pack in C
        self.limits = limits or StateLimits()
        self.incarnation = incarnation or secrets.token_hex(4)
        self._cluster = isinstance(client, RedisCluster)
        self._wait = (wait_replicas, wait_timeout_ms)
        scripts.check_all()  # a script that reads other slots than sent is refused now
        self._listening = scripts.LISTENING
        self._stream = scripts.STREAM
        self._note_script = scripts.NOTE
        self._commands = ListeningCommands(self.limits, self.incarnation)

    @property
    def client(self) -> aioredis.Redis | RedisCluster:
        """The connections, shared with the catalogue (``catalogue.py``)."""
        return self._client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        limits: StateLimits | None = None,
        cluster: bool = False,
        wait_replicas: int = 0,
        **options: Any,
    ) -> RedisStore:
        """``options``: ACL user and TLS files (``security.redis_options``); ``cluster``: the
        URL names one node of a Redis Cluster, which the client discovers from it."""
        timeouts: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}
        client: aioredis.Redis | RedisCluster
        if cluster:
            client = RedisCluster.from_url(url, **timeouts, **options)
        else:
            client = aioredis.Redis.from_url(url, health_check_interval=10, **timeouts, **options)
        return cls(client, limits=limits, wait_replicas=wait_replicas)

    async def _pipeline(
        self, commands: list[tuple[Any, ...]], slot_keys: Sequence[str]
    ) -> list[Any]:
        """Run commands (``(name, *args)``) in one pipeline, answers per command; with
        ``wait_replicas``, then WAIT on every node a key of ``slot_keys`` lives on."""
        replicas, timeout = self._wait
        if len(commands) == 1 and not replicas and not self._cluster:
            # one command (a quiet lane's batch of one): without a pipeline object, ~20 µs
            # less per call (measured); errors come back as replies, as from the pipeline
            try:
                return [await self._client.execute_command(*commands[0])]
            except rx.ResponseError as exc:
                return [exc]
        if self._cluster:
            await self._client.initialize()  # type: ignore[union-attr]
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            waits = 0
            if replicas:
                if self._cluster:
                    cluster = self._client
                    assert isinstance(cluster, RedisCluster)
                    nodes = {}
                    for key in slot_keys:
                        node = cluster.get_node_from_key(key)
                        if node is not None:
                            nodes[node.name] = node
                    for node in nodes.values():
                        pipe.execute_command("WAIT", replicas, timeout, target_nodes=node)
                    waits = len(nodes)
                else:
                    pipe.execute_command("WAIT", replicas, timeout)
                    waits = 1
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for acknowledged in replies[len(replies) - waits :]:
            if isinstance(acknowledged, Exception) or int(acknowledged) < replicas:
                raise StateUnavailable(
                    f"a write reached {acknowledged!r} of {replicas} replicas in {timeout} ms"
                )
        return replies[: len(replies) - waits]

    @translated
    async def apply_listening(
        self, updates: Sequence[ListeningUpdate], *, now_ms: int
    ) -> list[ListeningState | Refused]:
        if not updates:
            return []
        clocks, horizons = self._commands.batch(updates, now_ms)
        commands = [
            *clocks,
            *(self._commands.event(u, now_ms, h) for u, h in zip(updates, horizons, strict=True)),
        ]
        slots = [keys.user(u.tenant, u.user_id) for u in updates]
        replies = await self._pipeline(commands, slots)
        if any(isinstance(reply, rx.NoScriptError) for reply in replies):
            await self._listening.load(self._client)  # Redis restarted or was flushed
            await scripts.CLOCK.load(self._client)
            replies = await self._pipeline(commands, slots)
        for reply in replies[: len(clocks)]:
            if isinstance(reply, Exception) and is_transient(reply):
                raise reply  # (any other failure: the events below say it, each refused)
        results: list[ListeningState | Refused] = []
        for reply in replies[len(clocks) :]:
            if isinstance(reply, Exception):
                if is_transient(reply):  # the whole batch again: what went through is known
                    raise reply
                results.append(Refused(Reason.STATE_ERROR, f"{type(reply).__name__}: {reply}"))
            else:
                results.append(decode_listening(reply))
        return results

    @translated
    async def load_stream(self, tenant: str, stream: str, lane: str = "audio") -> bytes | None:
        state = await self._client.hget(keys.stream(tenant, stream, lane), "state")
        if state is None:
            return None
        return state.encode() if isinstance(state, str) else bytes(state)

    @translated
    async def save_stream(
        self,
        tenant: str,
        stream: str,
        seq: int,
        state: bytes,
        *,
        position: Position,
        outputs: bytes,
        record_time_ms: int,
        lane: str = "audio",
        embedding: Embedding | None = None,
    ) -> StreamSaved | Refused:
        limits = self.limits
        model = embedding.model if embedding is not None else "-"
        named = scripts.StreamKeys(
            stream=keys.stream(tenant, stream, lane),
            outputs_key=keys.stream_outputs(tenant, position.partition, stream, lane),
            quota=keys.quota(tenant, record_time_ms // (DAY_S * 1000)),
            admitted=keys.stream_admitted(tenant, stream),
            embeddings=keys.embeddings(tenant, model),
            catalogue=keys.catalogue(tenant, model),
            stamps=keys.embedding_stamps(tenant, model),
            written=keys.embedding_written(tenant, model),
            gone=keys.embedding_gone(tenant, model),
        )
        args = scripts.StreamArgs(
            seq=seq,
            state=state,
            ttl=limits.stream_ttl_s,
            position=str(position),
            outputs=outputs,
            offset=position.offset,
            committed=position.committed,
            outputs_kept=limits.outputs_per_stream,
            incarnation=self.incarnation,
            quota_limit=limits.new_ids_per_day,
            quota_ttl=2 * DAY_S,
            item=embedding.item if embedding is not None else "",
            vector=embedding.vector if embedding is not None else b"",
            now=int(time.time() * 1000),
            catalogue_ttl=limits.state_ttl_s,
            gone_for=GONE_FOR_MS,
        )
        command = self._stream.command(named, args)
        (reply,) = await self._pipeline([command], [named.stream])
        if isinstance(reply, rx.NoScriptError):
            await self._stream.load(self._client)
            (reply,) = await self._pipeline([command], [named.stream])
        if isinstance(reply, Exception):
            if is_transient(reply):
                raise reply
            return Refused(Reason.STATE_ERROR, f"{type(reply).__name__}: {reply}")
        if int(reply[0]) < 0:
            reason = Reason.QUOTA_EXCEEDED if _text(reply[1]) == "quota" else Reason.STATE_ERROR
            return Refused(reason, _text(reply[2]))
        if int(reply[0]) == 0:
            return StreamSaved(accepted=False, previous=int(reply[1]))
        return StreamSaved(
            accepted=True,
            previous=int(reply[1]),
            catalogue_version=int(reply[2]),
            item_kept=bool(int(reply[3])),
        )

    @translated
    async def kept_chunk(
        self, tenant: str, stream: str, position: Position, lane: str = "audio"
    ) -> KeptChunk | None:
        key = keys.stream_outputs(tenant, position.partition, stream, lane)
        try:
            entries = await self._client.zrangebyscore(key, position.offset, position.offset)
        except rx.ResponseError as exc:  # a key of another type: nothing was kept there
            if is_transient(exc):
                raise
            return None
        wanted = f"{position}|".encode()
        for entry in entries:
            raw = entry.encode() if isinstance(entry, str) else entry
            if isinstance(raw, bytes) and raw.startswith(wanted):
                incarnation, _, rest = raw[len(wanted) :].partition(b"|")
                _seq, _, outputs = rest.partition(b"|")
                return KeptChunk(outputs=outputs, own=incarnation.decode() == self.incarnation)
        return None

    @translated
    async def note_dead_letters(self, letters: Sequence[tuple[str | None, Position]]) -> list[bool]:
        if not letters:
            return []
        commands: list[tuple[Any, ...]] = []
        ledgers = []
        for owner, position in letters:
            key = keys.deadletter_ledger(owner, position.topic, position.partition)
            ledgers.append(key)
            commands.append(("ZADD", key, "NX", position.offset, str(position.offset)))
            if position.committed >= 0:
                commands.append(("ZREMRANGEBYSCORE", key, "-inf", f"({position.committed}"))
            commands.append(("EXPIRE", key, self.limits.replay_memory_s))
        replies = await self._pipeline(commands, ledgers)
        noted, i = [], 0
        for _, position in letters:
            reply = replies[i]
            i += 3 if position.committed >= 0 else 2
            if isinstance(reply, Exception):
                if is_transient(reply):
                    raise reply
                noted.append(True)  # a ledger key of another type: say first, never hide one
            else:
                noted.append(int(reply) == 1)
        return noted

    @translated
    async def report_waiting(self, tenant: str, waiting: Sequence[int], *, now_ms: int) -> None:
        command = self._commands.clock(tenant, now_ms, waiting=waiting)
        (reply,) = await self._pipeline([command], [keys.event_time(tenant, LISTENING_EVENTS)])
        if isinstance(reply, rx.NoScriptError):
            await scripts.CLOCK.load(self._client)
            (reply,) = await self._pipeline([command], [keys.event_time(tenant, LISTENING_EVENTS)])
        if isinstance(reply, Exception):
            raise reply

    @translated
    async def note_accounts(self, published: Sequence[tuple[str, str, str]]) -> None:
        await self._note([(keys.user(t, u), "ap", marker) for t, u, marker in published])

    @translated
    async def note_tracks(self, published: Sequence[tuple[str, str, str]]) -> None:
        await self._note([(keys.track(t, track), "tm", marker) for t, track, marker in published])

    async def _note(self, notes: list[tuple[str, str, str]]) -> None:
        if not notes:
            return
        commands = [
            self._note_script.command(
                scripts.NoteKeys(subject=key), scripts.NoteArgs(field=name, marker=marker)
            )
            for key, name, marker in notes
        ]
        subjects = [key for key, _, _ in notes]
        replies = await self._pipeline(commands, subjects)
        if any(isinstance(reply, rx.NoScriptError) for reply in replies):
            await self._note_script.load(self._client)
            replies = await self._pipeline(commands, subjects)
        for reply in replies:
            if isinstance(reply, Exception) and is_transient(reply):
                raise reply

    @translated
    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
