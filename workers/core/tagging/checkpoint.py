"""Read a TensorFlow checkpoint (the V2 "tensor bundle") with numpy alone.

A bundle is two files: ``<prefix>.index``, a LevelDB-format table whose keys are variable
names and whose values are ``BundleEntryProto`` messages (dtype, shape, where the bytes
are), and ``<prefix>.data-00000-of-00001``, the tensors' raw little-endian bytes. The
reader parses just those two formats, so the worker runs shipped weights without
TensorFlow. Only what a bundle written by ``tf.compat.v1.train.Saver`` uses is supported:
uncompressed blocks, one shard, float32 / int64 tensors.

>>> import numpy as np, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_bundle(folder / "m", {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
>>> read_bundle(folder / "m")["w"].tolist()
[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CheckpointError", "read_bundle", "write_bundle"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5  # a block's compression type (1 byte) and CRC (4 bytes)
_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    9: np.dtype("<i8"),
}


class CheckpointError(ValueError):
    """The files are not a tensor bundle this reader understands."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint too long")


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's (field number, value) pairs: varints, fixed and length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(message, pos)
            out.append((number, message[pos : pos + size]))
            pos += size
        elif wire == 5:
            out.append((number, int.from_bytes(message[pos : pos + 4], "little")))
            pos += 4
        elif wire == 1:
            out.append((number, int.from_bytes(message[pos : pos + 8], "little")))
            pos += 8
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
    return out


def _block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block (keys are prefix-compressed)."""
    if offset + size + _TRAILER > len(table):
        raise CheckpointError("block beyond the end of the index")
    if table[offset + size] != 0:
        raise CheckpointError("compressed index blocks are not supported")
    data = table[offset : offset + size]
    (restarts,) = struct.unpack_from("<I", data, size - 4)
    end = size - 4 - 4 * restarts
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < end:
        shared, pos = _varint(data, pos)
        unshared, pos = _varint(data, pos)
        value_size, pos = _varint(data, pos)
        key = key[:shared] + data[pos : pos + unshared]
        pos += unshared
        entries.append((key, data[pos : pos + value_size]))
        pos += value_size
    return entries


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def read_bundle(prefix: str | Path) -> dict[str, npt.NDArray[np.generic]]:
    """Every tensor of the bundle at ``prefix`` (``<prefix>.index`` and its data file);
    ``CheckpointError`` for anything damaged or unsupported."""
    try:
        return _read(str(prefix))
    except CheckpointError:
        raise
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"damaged checkpoint: {exc}") from exc


def _read(prefix: str) -> dict[str, npt.NDArray[np.generic]]:
    table = Path(prefix + ".index").read_bytes()
    if len(table) < _FOOTER:
        raise CheckpointError("index file too short")
    footer = table[-_FOOTER:]
    if struct.unpack_from("<Q", footer, 40)[0] != _MAGIC:
        raise CheckpointError("not a LevelDB-format table (bad magic)")
    _, _, pos = _handle(footer, 0)  # the meta-index: unused
    index_offset, index_size, _ = _handle(footer, pos)
    data = np.memmap(prefix + ".data-00000-of-00001", dtype=np.uint8, mode="r")
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    for _, handle in _block(table, index_offset, index_size):
        offset, size, _ = _handle(handle, 0)
        for key, value in _block(table, offset, size):
            if key:  # the empty key holds the bundle's header
                tensors[key.decode()] = _tensor(value, data)
    return tensors


def _tensor(entry: bytes, data: npt.NDArray[np.uint8]) -> npt.NDArray[np.generic]:
    fields = dict(_fields(entry))
    numbers = {k: v for k, v in fields.items() if isinstance(v, int)}
    dtype = _DTYPES.get(numbers.get(1, 0))
    if dtype is None:
        raise CheckpointError(f"unsupported tensor dtype {numbers.get(1)!r}")
    if numbers.get(3, 0):
        raise CheckpointError("sharded bundles are not supported")
    shape_message = fields.get(2, b"")
    shape: list[int] = []
    if isinstance(shape_message, bytes):
        for number, dim in _fields(shape_message):
            if number == 2 and isinstance(dim, bytes):
                size_field = dict(_fields(dim)).get(1, 0)
                shape.append(size_field if isinstance(size_field, int) else 0)
    offset, size = numbers.get(4, 0), numbers.get(5, 0)
    count = int(np.prod(shape)) if shape else 1
    if count * dtype.itemsize != size or offset + size > data.shape[0]:
        raise CheckpointError("tensor size does not match its shape")
    raw = np.asarray(data[offset : offset + size]).tobytes()
    tensor: npt.NDArray[np.generic] = (
        np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    )
    return tensor


def write_bundle(prefix: str | Path, tensors: dict[str, npt.NDArray[np.generic]]) -> None:
    """Write ``tensors`` as a one-block bundle (for tests and conversions)."""
    codes = {dtype: code for code, dtype in _DTYPES.items()}
    data = bytearray()
    block = bytearray()
    restarts: list[int] = []

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def entry(key: bytes, value: bytes) -> None:
        restarts.append(len(block))
        block.extend(varint(0) + varint(len(key)) + varint(len(value)) + key + value)

    entry(b"", b"")
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = array.dtype.newbyteorder("<")
        dims = b"".join(
            b"\x12" + varint(len(d)) + d for d in (b"\x08" + varint(n) for n in array.shape)
        )
        message = (
            b"\x08"
            + varint(codes[dtype])
            + b"\x12"
            + varint(len(dims))
            + dims
            + b"\x20"
            + varint(len(data))
            + b"\x28"
            + varint(array.nbytes)
        )
        entry(name.encode(), message)
        data.extend(array.astype(dtype).tobytes())
    block.extend(b"".join(struct.pack("<I", r) for r in restarts))
    block.extend(struct.pack("<I", len(restarts)))
    index = bytearray()
    index_restart = 0
    handle = varint(0) + varint(len(block))
    index.extend(varint(0) + varint(1) + varint(len(handle)) + b"\xff" + handle)
    index.extend(struct.pack("<II", index_restart, 1))
    table = bytes(block) + b"\x00\x00\x00\x00\x00"
    index_offset = len(table)
    table += bytes(index) + b"\x00\x00\x00\x00\x00"
    footer = varint(0) + varint(0) + varint(index_offset) + varint(len(index))
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", _MAGIC)
    Path(str(prefix) + ".index").write_bytes(table + footer)
    Path(str(prefix) + ".data-00000-of-00001").write_bytes(bytes(data))
