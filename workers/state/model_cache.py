"""Live per-tenant models: created on first use, restored from snapshots, checkpointed.

A bounded LRU keeps memory flat with thousands of tenants; an evicted model that
changed since its last checkpoint is saved before it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from workers.state import snapshots as snapshot
from workers.state.keyring import Keyring

if TYPE_CHECKING:
    from workers.state.store import StateStore

log = logging.getLogger(__name__)

Key = tuple[str, str]


class ModelRegistry:
    def __init__(
        self,
        store: StateStore,
        factories: Mapping[str, Callable[[], Any]],
        *,
        max_models: int = 2000,
        keyring: Keyring | None = None,
    ) -> None:
        self._store = store
        self._factories = dict(factories)
        self._max_models = max_models
        self._keyring = keyring
        self._live: OrderedDict[Key, Any] = OrderedDict()
        self._dirty: set[Key] = set()
        self.restored = 0

    def __len__(self) -> int:
        return len(self._live)

    def live(self) -> list[tuple[str, str, Any]]:
        """(tenant, kind, model) of every model in memory, for metrics."""
        return [(tenant, kind, model) for (tenant, kind), model in self._live.items()]

    async def get(self, tenant: str, kind: str) -> Any:
        k = (tenant, kind)
        model = self._live.get(k)
        if model is not None:
            self._live.move_to_end(k)
            return model
        model = await self._restore(tenant, kind)
        self._live[k] = model
        await self._evict()
        return model

    async def _restore(self, tenant: str, kind: str) -> Any:
        blob = await self._store.load_snapshot(tenant, kind)
        if blob is not None:
            try:
                model = snapshot.load(blob, kind=kind, keyring=self._keyring)
                self.restored += 1
                return model
            except snapshot.SnapshotError as exc:
                log.warning(
                    "tenant %s: %s model snapshot not restored (%s); starting fresh",
                    tenant,
                    kind,
                    exc,
                )
        return self._factories[kind]()

    def touched(self, tenant: str, kind: str) -> None:
        self._dirty.add((tenant, kind))

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
