"""Live per-tenant models: created on first use, restored from snapshots, checkpointed.

A bounded LRU keeps memory flat with thousands of tenants; an evicted model that changed
since its last checkpoint is saved before it is dropped. A snapshot is restored only if it
was written by the same River version and the same model version as a fresh model of its
kind would have; otherwise the tenant starts fresh (and says so in the log).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from workers.core.models.protocol import Model, ModelKind
from workers.state import snapshots as snapshot
from workers.state.keyring import Keyring

if TYPE_CHECKING:
    from workers.state.protocol import StateStore

__all__ = ["ModelRegistry"]

log = logging.getLogger(__name__)

Key = tuple[str, str]
M = TypeVar("M", bound=Model)


class ModelRegistry:
    def __init__(
        self,
        store: StateStore,
        factories: Mapping[str, Callable[[], Model]],
        *,
        max_models: int = 2000,
        keyring: Keyring | None = None,
    ) -> None:
        self._store = store
        self._factories = dict(factories)
        self._max_models = max_models
        self._keyring = keyring
        self._live: OrderedDict[Key, Model] = OrderedDict()
        self._dirty: set[Key] = set()
        self.restored = 0

    def __len__(self) -> int:
        return len(self._live)

    def live(self) -> list[tuple[str, str, Model]]:
        """(tenant, kind, model) of every model in memory, for metrics."""
        return [(tenant, kind, model) for (tenant, kind), model in self._live.items()]

    async def get(self, tenant: str, kind: ModelKind[M]) -> M:
        k = (tenant, kind.name)
        model = self._live.get(k)
        if model is not None:
            self._live.move_to_end(k)
            return kind.check(model)
        model = await self._restore(tenant, kind.name)
        self._live[k] = model
        await self._evict()
        return kind.check(model)

    async def _restore(self, tenant: str, kind: str) -> Model:
        fresh = self._factories[kind]()
        blob = await self._store.load_snapshot(tenant, kind)
        if blob is None:
            return fresh
        try:
            model: Model = snapshot.load(
                blob, kind=kind, keyring=self._keyring, model_version=fresh.version
            )
        except snapshot.SnapshotError as exc:
            log.warning(
                "tenant %s: %s model snapshot not restored (%s); starting fresh", tenant, kind, exc
            )
            return fresh
        self.restored += 1
        return model

    def touched(self, tenant: str, kind: ModelKind[Any]) -> None:
        self._dirty.add((tenant, kind.name))

    async def _evict(self) -> None:
        evicted: dict[Key, bytes] = {}
        while len(self._live) > self._max_models:
            k, model = self._live.popitem(last=False)
            if k in self._dirty:
                evicted[k] = snapshot.dump(model, kind=k[1], keyring=self._keyring)
                self._dirty.discard(k)
        await self._store.save_snapshots(evicted)

    async def checkpoint(self) -> int:
        """Save every model changed since the last checkpoint; returns how many."""
        dirty, self._dirty = self._dirty, set()
        blobs = {}
        for k in dirty:
            if k in self._live:
                blobs[k] = snapshot.dump(self._live[k], kind=k[1], keyring=self._keyring)
                # one model at a time (an audio detector takes ~10 ms to dump): records
                # waiting behind a checkpoint wait for one model, not for all of them
                await asyncio.sleep(0)
        try:
            await self._store.save_snapshots(blobs)
        except Exception:
            self._dirty |= dirty
            raise
        return len(blobs)
