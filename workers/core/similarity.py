"""A tenant's audio similarity index: exact search for small catalogues, HNSW above.

Vectors are unit length, similarity is their dot product (cosine). Up to
``exact_limit`` items, a query is one matrix-vector product over the whole catalogue
(exact; 0.8 ms at 10,000 items of 200 dimensions on one core, measured). Above it, an
approximate HNSW graph (usearch: maintained, wheels for every platform, supports updating
an item in place; chosen over hnswlib and faiss by the similarity benchmark) answers in a
fraction of a millisecond at 100,000 items, with recall@10 reported by that benchmark.

What a process holds is bounded: at most ``max_items`` items (past it, the item written
longest ago goes), the graph keeps its vectors in half precision, and once it is built the
exact matrix is let go (``keep_exact`` keeps it, for the benchmark's ground truth). Items
removed (expired from the catalogue) leave the index at once.

The graph is built off the caller's thread (``build`` is synchronous and touches only a
snapshot); until it is swapped in, queries stay exact, and items written meanwhile are
applied to it at the swap.

>>> import numpy as np
>>> index = SimilarityIndex()
>>> index.upsert(["a", "b", "c"], np.eye(3, dtype=np.float32))
>>> index.query(np.array([1.0, 0.1, 0.0], np.float32), 2, exclude={"a"})
[('b', 0.1), ('c', 0.0)]
>>> index.remove(["b"]); index.query(np.array([0.0, 1.0, 0.0], np.float32), 2)
[('a', 0.0), ('c', 0.0)]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # imported when a catalogue first needs the graph
    from usearch.index import Index

__all__ = ["SimilarityIndex"]

Vector = npt.NDArray[np.float32]


class SimilarityIndex:
    def __init__(
        self,
        *,
        exact_limit: int = 20_000,
        max_items: int = 500_000,
        connectivity: int = 16,
        expansion: int = 64,
        keep_exact: bool = False,
    ) -> None:
        self.exact_limit = exact_limit
        self.max_items = max_items
        self._connectivity = connectivity
        self._expansion = expansion
        self._keep_exact = keep_exact
        #: row -> item (None: a removed item's row, never reused until a rebuild)
        self._ids: list[str | None] = []
        #: item -> row, oldest written first
        self._rows: OrderedDict[str, int] = OrderedDict()
        self._matrix: npt.NDArray[np.float32] | None = np.zeros((0, 0), np.float32)
        self._dim = 0
        #: per row of the matrix: its item is still there
        self._alive = np.zeros(0, bool)
        self._graph: Index | None = None
        self._building = False
        self._dirty: set[int] = set()
        self._gone_while_building: set[int] = set()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def approximate(self) -> bool:
        return self._graph is not None

    @property
    def dim(self) -> int:
        return self._dim

    def nbytes(self) -> int:
        """About what the index holds in memory (the matrix, the graph, the ids)."""
        held = self._matrix.nbytes if self._matrix is not None else 0
        if self._graph is not None:
            held += int(self._graph.memory_usage)
        return held + 120 * len(self._ids)

    def vector(self, item: str) -> Vector | None:
        row = self._rows.get(item)
        if row is None:
            return None
        if self._matrix is not None:
            exact: Vector = self._matrix[row]
            return exact
        assert self._graph is not None
        found: Vector = np.asarray(self._graph.get(row), np.float32)
        return found

    def upsert(self, ids: Sequence[str], vectors: npt.NDArray[np.floating]) -> None:
        """Add or replace items (rows of ``vectors``, unit length); past ``max_items`` the
        items written longest ago leave."""
        vectors = np.asarray(vectors, np.float32)
        if not len(ids):
            return
        if self._dim != vectors.shape[1]:
            if self._rows:
                raise ValueError(f"vectors of {vectors.shape[1]} dimensions, not {self._dim}")
            self._dim = int(vectors.shape[1])
            self._matrix = np.zeros((0, self._dim), np.float32)
        new = sum(item not in self._rows for item in ids)
        self._reserve(len(self._ids) + new)
        rows = []
        for item, vector in zip(ids, vectors, strict=True):
            row = self._rows.pop(item, None)
            if row is None:
                row = len(self._ids)
                self._ids.append(item)
            self._rows[item] = row  # now the newest written
            if self._matrix is not None:
                self._matrix[row] = vector
                self._alive[row] = True
            rows.append((row, vector))
        if self._graph is not None:
            self._graph_upsert(rows)
        elif self._building:
            self._dirty.update(row for row, _ in rows)
        if len(self._rows) > self.max_items:
            self.remove(list(self._rows)[: len(self._rows) - self.max_items])

    def remove(self, ids: Collection[str]) -> None:
        """Items gone from the catalogue: found no more."""
        for item in ids:
            row = self._rows.pop(item, None)
            if row is None:
                continue
            self._ids[row] = None
            if row < self._alive.size:
                self._alive[row] = False
            if self._graph is not None and row in self._graph:
                self._graph.remove(row)
            if self._building:
                self._gone_while_building.add(row)
            self._dirty.discard(row)

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` rows in the exact matrix, grown by a quarter at a time."""
        matrix = self._matrix
        if matrix is None or rows <= matrix.shape[0]:
            return
        size = max(rows, 16, matrix.shape[0] * 5 // 4)
        grown = np.zeros((size, self._dim), np.float32)
        grown[: matrix.shape[0]] = matrix
        alive = np.zeros(size, bool)
        alive[: self._alive.size] = self._alive
        self._matrix, self._alive = grown, alive

    def wants_graph(self) -> bool:
        """Large enough for the approximate index, and none built or being built."""
        return len(self._rows) > self.exact_limit and self._graph is None and not self._building

    def build(self) -> None:
        """Build the HNSW graph from a snapshot (run it in a thread), then swap it in and,
        unless told to keep it, let the exact matrix go."""
        from usearch.index import Index

        assert self._matrix is not None
        self._building = True
        try:
            rows = np.array(sorted(self._rows.values()), dtype=np.uint64)
            snapshot = self._matrix[rows.astype(np.int64)].copy()
            graph = Index(
                ndim=self._dim,
                metric="ip",
                dtype="f16",
                connectivity=self._connectivity,
                expansion_search=self._expansion,
            )
            graph.add(rows, snapshot, threads=1)
            dirty, self._dirty = self._dirty, set()
            gone, self._gone_while_building = self._gone_while_building, set()
            self._graph = graph
            for row in gone:
                if row in graph:
                    graph.remove(row)
            self._graph_upsert(
                [(r, self._matrix[r]) for r in sorted(dirty) if self._ids[r] is not None]
            )
            if not self._keep_exact:
                self._matrix = None
        finally:
            self._building = False

    def _graph_upsert(self, rows: Sequence[tuple[int, Vector]]) -> None:
        graph = self._graph
        assert graph is not None
        for row, vector in rows:
            if row in graph:
                graph.remove(row)
            graph.add(row, vector)

    def query(
        self, vector: Vector, k: int, *, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` most similar items (best first, similarity rounded to 4 places),
        ``exclude`` left out."""
        if not self._rows or k <= 0:
            return []
        wanted = min(len(self._rows), k + len(exclude))
        q = np.asarray(vector, np.float32)
        if self._graph is None:
            found = self._exact(q, wanted)
        else:
            result = self._graph.search(q, wanted, threads=1)
            found = [
                (int(key), 1.0 - float(d))
                for key, d in zip(result.keys, result.distances, strict=True)
            ]
        out = []
        for row, score in found:
            item = self._ids[row]
            if item is not None and item not in exclude:
                out.append((item, round(score, 4)))
        return out[:k]

    def exact(self, vector: Vector, k: int) -> list[str]:
        """Exact search whatever the size (the benchmark's ground truth: ``keep_exact``)."""
        found = self._exact(np.asarray(vector, np.float32), k)
        return [item for r, _ in found if (item := self._ids[r]) is not None]

    def _exact(self, q: Vector, k: int) -> list[tuple[int, float]]:
        """The ``k`` best rows and their similarity, by one product over the catalogue."""
        if self._matrix is None:
            raise RuntimeError("the exact matrix was let go when the graph was built")
        count = len(self._ids)
        scores = self._matrix[:count] @ q
        if len(self._rows) < count:  # removed rows never come back
            scores[~self._alive[:count]] = -np.inf
        k = min(k, len(self._rows))
        top = np.argpartition(-scores, k - 1)[:k] if k < count else np.arange(count)
        rows = top[np.argsort(-scores[top], kind="stable")]
        return [(int(r), float(scores[r])) for r in rows if np.isfinite(scores[r])]
