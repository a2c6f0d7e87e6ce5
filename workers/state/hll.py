"""Redis's HyperLogLog, register for register, so the in-memory store counts distinct
listeners and tracks exactly as ``PFADD``/``PFCOUNT`` do (the store contract compares the
two stores value for value, and the models read these counts).

Redis hashes an element with MurmurHash64A (seed ``0xadc83b19``), takes the low 14 bits as
the register and the run of zeros above them (plus one) as its value, and estimates the
cardinality from the registers' histogram with Otmar Ertl's estimator ("New cardinality
estimation algorithms for HyperLogLog sketches", 2017; ``hllCount`` in Redis's
``hyperloglog.c``). Registers are kept sparse: a dict of the ones set.

>>> h = HyperLogLog()
>>> for i in range(3):
...     h.add(f"t{i}")
>>> h.count()
3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["HyperLogLog", "murmur64a"]

_P = 14
_REGISTERS = 1 << _P
_Q = 64 - _P
_ALPHA_INF = 0.721347520444481703680
_M64 = 0xC6A4A7935BD1E995
_MASK = (1 << 64) - 1
_SEED = 0xADC83B19


def murmur64a(data: bytes, seed: int = _SEED) -> int:
    """MurmurHash64A as Redis computes it (little-endian blocks)."""
    h = (seed ^ (len(data) * _M64)) & _MASK
    end = len(data) - (len(data) & 7)
    for i in range(0, end, 8):
        k = (int.from_bytes(data[i : i + 8], "little") * _M64) & _MASK
        k ^= k >> 47
        k = (k * _M64) & _MASK
        h ^= k
        h = (h * _M64) & _MASK
    rest = len(data) & 7
    if rest:
        for j in range(rest - 1, -1, -1):
            h ^= data[end + j] << (8 * j)
        h = (h * _M64) & _MASK
    h ^= h >> 47
    h = (h * _M64) & _MASK
    h ^= h >> 47
    return h


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if previous == z:
            return z / 3.0


@dataclass
class HyperLogLog:
    registers: dict[int, int] = field(default_factory=dict)

    def add(self, element: str | bytes) -> None:
        raw = element.encode() if isinstance(element, str) else element
        h = murmur64a(raw)
        index = h & (_REGISTERS - 1)
        h = (h >> _P) | (1 << _Q)
        count = 1
        while not h & 1:
            count += 1
            h >>= 1
        if count > self.registers.get(index, 0):
            self.registers[index] = count

    def count(self) -> int:
        m = float(_REGISTERS)
        histogram = [0] * (_Q + 2)
        histogram[0] = _REGISTERS - len(self.registers)
        for value in self.registers.values():
            histogram[value] += 1
        z = m * _tau((m - histogram[_Q + 1]) / m)
        for j in range(_Q, 0, -1):
            z += histogram[j]
            z *= 0.5
        z += m * _sigma(histogram[0] / m)
        estimate = _ALPHA_INF * m * m / z
        # llroundl: half away from zero
        return math.floor(estimate + 0.5)

    def __len__(self) -> int:
        return self.count()
