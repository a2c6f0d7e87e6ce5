"""The recommendation step: a request in, its ranked tracks (or a dead letter) out.

Served by the core worker, from what the other paths keep: the tagger's embeddings (a
similarity index per tenant, in this process, refreshed with what changed whenever the
tenant's embeddings version moves), and the co-listening, recent plays and popularity
that the listening step's script keeps in Redis. A request changes no state: one read
again is answered again.

Each tenant has its share (``rate`` requests a second per process, a token bucket): past
it, a request is answered at once from the tenant's popular tracks of the last second,
marked ``rate_limited``, so one tenant's flood is cheap and the others' requests behind it
get full answers without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt

from workers.core.errors import Rejected
from workers.core.eventtime import now_ms as clock_ms
from workers.core.payloads import recommendations_payload
from workers.core.ratelimit import TenantBuckets
from workers.core.recommend import (
    CONTENT_WEIGHT,
    RECENCY,
    SEEDS,
    Item,
    Request,
    hybrid,
    merge_seeds,
    parse_request,
    popular_items,
)
from workers.core.records import (
    RECOMMENDATIONS,
    Outcome,
    Output,
    Record,
    Stopwatch,
    check_readable,
    dead_letter,
)
from workers.core.records import check_tenant as check_record_tenant
from workers.core.similarity import SimilarityIndex
from workers.core.tagging import TagState
from workers.state.catalogue import Catalogue
from workers.state.protocol import StateStore

__all__ = ["RECOMMENDER_VERSION", "RecommendStep"]

log = logging.getLogger(__name__)

RECOMMENDER_VERSION = "hybrid-v1"
#: candidates asked of each source per item wanted
CANDIDATES = 3


class RecommendStep:
    def __init__(
        self,
        *,
        tenants: Iterable[str],
        store: StateStore,
        catalogue: Catalogue,
        exact_limit: int = 20_000,
        max_items: int = 500_000,
        memory_bytes: int = 1 << 30,
        content_weight: float = CONTENT_WEIGHT,
        sources: tuple[str, ...] = ("content", "collaborative"),
        rate_per_tenant: float = 0.0,
    ) -> None:
        """``sources``: both, or one of them alone (the benchmark's ablations);
        ``rate_per_tenant``: requests a second each tenant gets full answers for (0: all)."""
        self._tenants = frozenset(tenants)
        self._store = store
        self._catalogue = catalogue
        self._exact_limit = exact_limit
        self._content_weight = content_weight
        self._sources = frozenset(sources)
        self._max_items = max_items
        self._memory_bytes = memory_bytes
        #: per tenant, least recently asked first: a process holds at most ``memory_bytes``
        #: of them (the tenant asked least recently is let go, and read again if asked)
        self.indexes: OrderedDict[str, SimilarityIndex] = OrderedDict()
        self._versions: dict[str, int] = {}
        self._builds: set[asyncio.Task[None]] = set()
        self._shares = TenantBuckets(rate=rate_per_tenant, burst=max(1.0, 2 * rate_per_tenant))
        #: per tenant: when its popular tracks were read (ms), and what they were
        self._popular: dict[str, tuple[int, list[tuple[str, float]]]] = {}

    async def process(self, record: Record, *, degraded: bool = False) -> Outcome:
        watch = Stopwatch()
        outcome = Outcome(record)
        try:
            check_readable(record)
            request = parse_request(record.value, key=record.key)
            check_record_tenant(request.tenant, self._tenants, record)
        except Rejected as rejected:
            outcome.rejected = rejected
            outcome.outputs = [dead_letter(record, rejected)]
            return outcome
        outcome.tenant = request.tenant
        watch.lap("validate")
        if self._shares.take(request.tenant, now_s=time.monotonic()):
            outcome.outputs = [await self._answer(request, watch)]
        else:
            outcome.outputs = [await self._limited(request, watch)]
        outcome.stages = watch.stages
        return outcome

    async def _answer(self, request: Request, watch: Stopwatch) -> Output:
        t, n = request.tenant, request.k * CANDIDATES
        now = clock_ms()
        if request.kind == "user":
            seeds, _, popular, version = await self._catalogue.reads(
                t, user=request.subject, tracks=(), now_ms=now, n=n
            )
            seeds = seeds[:SEEDS]
            co_lists = (
                (await self._catalogue.reads(t, user=None, tracks=seeds, now_ms=now, n=n))[1]
                if seeds
                else []
            )
            exclude = set(seeds)
        else:
            _, co_lists, popular, version = await self._catalogue.reads(
                t, user=None, tracks=(request.subject,), now_ms=now, n=n
            )
            seeds, exclude = [request.subject], {request.subject}
        watch.lap("state")
        index = await self._index(t, version)
        watch.lap("index")
        query = await self._query_vector(request, index, seeds, exclude)
        content = index.query(query, n, exclude=exclude) if query is not None else []
        if "content" not in self._sources:
            content = []
        if "collaborative" not in self._sources:
            co_lists = []
        items = hybrid(
            content,
            merge_seeds(co_lists),
            k=request.k,
            exclude=exclude,
            content_weight=self._content_weight,
        )
        strategy: Literal["hybrid", "popular"] = "hybrid"
        if not items:
            items, strategy = popular_items(popular, k=request.k, exclude=exclude), "popular"
        watch.lap("ranking")
        return _answer(request, items, strategy, index)

    async def _limited(self, request: Request, watch: Stopwatch) -> Output:
        """A request past its tenant's share: the tenant's popular tracks, read at most once
        a second (no index, no per-request read)."""
        t, now = request.tenant, clock_ms()
        read_at, popular = self._popular.get(t, (-1, []))
        if now - read_at >= 1000:
            _, _, popular, _ = await self._catalogue.reads(
                t, user=None, tracks=(), now_ms=now, n=100 * CANDIDATES
            )
            self._popular[t] = (now, popular)
        exclude = {request.subject} if request.kind == "track" else set()
        items = popular_items(popular, k=request.k, exclude=exclude)
        watch.lap("ranking")
        return _answer(request, items, "popular", self.indexes.get(t), rate_limited=True)

    def _fresh_index(self) -> SimilarityIndex:
        return SimilarityIndex(exact_limit=self._exact_limit, max_items=self._max_items)

    def _within_budget(self, *, keep: str) -> None:
        """Let the indexes asked for least recently go while the process holds more than
        its budget (never the one in use)."""
        held = sum(index.nbytes() for index in self.indexes.values())
        for tenant in list(self.indexes):
            if held <= self._memory_bytes or tenant == keep:
                break
            held -= self.indexes.pop(tenant).nbytes()
            self._versions.pop(tenant, None)
            log.info("similarity index of %s let go (memory budget)", tenant)

    async def _query_vector(
        self, request: Request, index: SimilarityIndex, seeds: list[str], exclude: set[str]
    ) -> npt.NDArray[np.float32] | None:
        """The subject's embedding: the track's, the stream's (its tagging state: the
        stream's own track joins ``exclude``), or the recency-weighted mean of the
        listener's latest tracks'."""
        if request.kind == "stream":
            blob = await self._store.load_stream(request.tenant, request.subject, "tags")
            state = TagState.from_bytes(blob) if blob else None
            if state is not None and state.tagged:
                if state.track:
                    exclude.add(state.track)
                return state.mean_embedding().astype(np.float32)
            return index.vector(request.subject)
        found = [(i, index.vector(s)) for i, s in enumerate(seeds)]
        vectors = [(RECENCY**i) * v for i, v in found if v is not None]
        if not vectors:
            return None
        mean = np.sum(vectors, axis=0)
        norm = float(np.linalg.norm(mean))
        return (mean / norm).astype(np.float32) if norm > 0 else None

    async def _index(self, tenant: str, version: int) -> SimilarityIndex:
        """The tenant's index, brought up to ``version`` (only what changed is read)."""
        index = self.indexes.get(tenant)
        if index is None:
            index = self._fresh_index()
            self._versions.pop(tenant, None)
        self.indexes[tenant] = index
        self.indexes.move_to_end(tenant)
        known = self._versions.get(tenant, 0)
        if version > known:
            changed = await self._catalogue.embeddings_since(tenant, known)
            if changed.reset:  # too far behind to be told what left: start afresh
                index = self.indexes[tenant] = self._fresh_index()
            index.remove(changed.removed)
            index.upsert(changed.ids, changed.vectors)
            self._versions[tenant] = changed.version
            self._within_budget(keep=tenant)
            if index.wants_graph():  # built off the event loop; exact until it is ready
                task = asyncio.create_task(asyncio.to_thread(index.build))
                self._builds.add(task)
                task.add_done_callback(self._builds.discard)
                log.info("building the similarity graph of %s (%d tracks)", tenant, len(index))
        return index


def _answer(
    request: Request,
    items: list[Item],
    strategy: Literal["hybrid", "popular"],
    index: SimilarityIndex | None,
    *,
    rate_limited: bool = False,
) -> Output:
    return Output(
        RECOMMENDATIONS,
        f"{request.tenant}/{request.request_id}",
        recommendations_payload(
            request_id=request.request_id,
            tenant=request.tenant,
            subject={"kind": request.kind, "id": request.subject},
            items=[item.as_json() for item in items],
            strategy=strategy,
            catalogue={
                "embedded": len(index) if index is not None else 0,
                "search": "approximate" if index is not None and index.approximate else "exact",
            },
            version=RECOMMENDER_VERSION,
            rate_limited=rate_limited,
        ),
    )
