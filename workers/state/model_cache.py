"""Live per-tenant models: created on first use, restored from snapshots, checkpointed.

A bounded LRU keeps memory flat with thousands of tenants; an evicted model that changed
since its last checkpoint is saved before it is dropped.

Restoring never fails a record: a snapshot that is stale (another River or model version)
or corrupt gives a fresh model, which the next checkpoint writes over it. A snapshot that
must not be trusted (``SnapshotRefused``: not encrypted while keys are set, another
tenant's, tampered) gives a fresh model too, but that model is *quarantined*: it is not
checkpointed while the refused snapshot is still the one stored, so an operator finds it
as it was (``workers_snapshots_refused_total`` and an alert tell them).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter, OrderedDict
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
        #: refused snapshots left in place: model key -> the refused blob's digest
        self._quarantined: dict[Key, bytes] = {}
        self.restored = 0
        #: snapshots not restored, per reason (refused: their reason; else "stale")
        self.not_restored: Counter[str] = Counter()

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
                blob,
                tenant=tenant,
                kind=kind,
                keyring=self._keyring,
                model_version=fresh.version,
            )
            model.quality()  # a model that cannot even report on itself is no model
        except snapshot.SnapshotRefused as exc:
            self.not_restored[exc.reason] += 1
            self._quarantined[(tenant, kind)] = hashlib.sha256(blob).digest()
            log.error(
                "tenant %s: %s model snapshot refused (%s); running a fresh model, the "
                "stored snapshot is kept for inspection and not overwritten",
                tenant,
                kind,
                exc,
            )
            return fresh
        except Exception as exc:  # stale or corrupt: never a reason to fail a record
            self.not_restored["stale"] += 1
            log.warning(
                "tenant %s: %s model snapshot not restored (%s); starting fresh", tenant, kind, exc
            )
            return fresh
        self.restored += 1
        return model

    def touched(self, tenant: str, kind: ModelKind[Any]) -> None:
        self._dirty.add((tenant, kind.name))

    def _dump(self, k: Key, model: Model) -> bytes:
        return snapshot.dump(model, tenant=k[0], kind=k[1], keyring=self._keyring)

    async def _still_quarantined(self, k: Key) -> bool:
        """True while the refused snapshot is the one stored (an operator has not acted)."""
        digest = self._quarantined.get(k)
        if digest is None:
            return False
        blob = await self._store.load_snapshot(*k)
        if blob is not None and hashlib.sha256(blob).digest() == digest:
            return True
        del self._quarantined[k]
        return False

    async def _evict(self) -> None:
        evicted: dict[Key, bytes] = {}
        while len(self._live) > self._max_models:
            k, model = self._live.popitem(last=False)
            if k in self._dirty and not await self._still_quarantined(k):
                evicted[k] = self._dump(k, model)
            self._dirty.discard(k)
        await self._store.save_snapshots(evicted)

    async def checkpoint(self) -> int:
        """Save every model changed since the last checkpoint; returns how many."""
        dirty, self._dirty = self._dirty, set()
        blobs = {}
        for k in dirty:
            if k in self._live and not await self._still_quarantined(k):
                blobs[k] = self._dump(k, self._live[k])
                # one model at a time (an audio detector takes ~10 ms to dump): records
                # waiting behind a checkpoint wait for one model, not for all of them
                await asyncio.sleep(0)
        try:
            await self._store.save_snapshots(blobs)
        except Exception:
            self._dirty |= dirty
            raise
        return len(blobs)
