"""The seam between Python and the Lua scripts: each script's KEYS and ARGV, declared once.

A script's keys and arguments are a frozen dataclass each, whose field order *is* the
order of ``KEYS`` / ``ARGV``; a trailing ``tuple`` field takes the rest of the slots (a
variable number of keys). The script reads them into named locals in one block at its
top, one line per field, spelt exactly as the declaration::

    local user = KEYS[2]
    local seen_days = {unpack(KEYS, 25)}

``check_header`` compares that block with the declaration, so a field added, removed or
moved on one side only fails when the script is loaded (and in ``tests/unit``), not as a
wrong number in production.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class K:
...     stream: str
...     rest: tuple[str, ...] = ()
>>> flatten(K("s", ("a", "b")))
['s', 'a', 'b']
>>> header(K, "KEYS")
['local stream = KEYS[1]', 'local rest = {unpack(KEYS, 2)}']
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = ["SeamMismatch", "check_header", "flatten", "header", "with_header"]

_LINE = re.compile(
    r"^local (?P<name>[a-z_][a-z0-9_]*) = "
    r"(?:(?P<table>KEYS|ARGV)\[(?P<index>\d+)\]"
    r"|\{unpack\((?P<rest_of>KEYS|ARGV), (?P<from>\d+)\)\})$"
)


class SeamMismatch(Exception):
    """A script's header does not read what its Python declaration sends."""


def _is_rest(field: dataclasses.Field[Any]) -> bool:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return str(kind).startswith("tuple")


_SLOTS: dict[type[Any], tuple[tuple[str, ...], str | None]] = {}


def _slots(declaration: type[Any]) -> tuple[tuple[str, ...], str | None]:
    """The fields that take one slot each, in order, and the trailing one that takes the
    rest (None if none): worked out once per declaration, not per call."""
    found = _SLOTS.get(declaration)
    if found is None:
        fields = dataclasses.fields(declaration)
        if fields and _is_rest(fields[-1]):
            found = tuple(f.name for f in fields[:-1]), fields[-1].name
        else:
            found = tuple(f.name for f in fields), None
        _SLOTS[declaration] = found
    return found


def flatten(declaration: Any) -> list[Any]:
    """The values of a declaration in slot order (a trailing tuple field spread out)."""
    names, rest = _slots(type(declaration))
    out = [getattr(declaration, name) for name in names]
    if rest is not None:
        out.extend(getattr(declaration, rest))
    return out


def header(declaration: type[Any], table: str) -> list[str]:
    """The Lua lines that read ``declaration`` from ``table`` (``KEYS`` or ``ARGV``)."""
    lines = []
    fields = dataclasses.fields(declaration)
    for index, field in enumerate(fields, start=1):
        if _is_rest(field):
            if index != len(fields):
                raise SeamMismatch(f"{declaration.__name__}.{field.name}: only the last may vary")
            lines.append(f"local {field.name} = {{unpack({table}, {index})}}")
        else:
            lines.append(f"local {field.name} = {table}[{index}]")
    return lines


def check_header(source: str, declaration: type[Any], table: str) -> None:
    """Raise ``SeamMismatch`` unless ``source`` reads ``table`` exactly as declared: the
    same names in the same slots, and no slot of ``table`` read anywhere else."""
    wanted = header(declaration, table)
    found = [
        line.strip()
        for line in source.splitlines()
        if (m := _LINE.match(line.strip())) and (m["table"] or m["rest_of"]) == table
    ]
    if found != wanted:
        raise SeamMismatch(
            f"the script's {table} block does not match {declaration.__name__}:\n"
            + "\n".join(f"  script: {a!r:60} python: {b!r}" for a, b in _pairs(found, wanted))
        )
    stray = [
        line.strip()
        for line in source.splitlines()
        if f"{table}[" in line and not _LINE.match(line.strip())
    ]
    if stray:
        raise SeamMismatch(f"{table} read outside the header: {stray[:3]}")


def _pairs(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else "", b[i] if i < len(b) else "") for i in range(n)]


def with_header(source: str, keys: type[Any], args: type[Any]) -> str:
    """``source`` with its KEYS and ARGV blocks replaced by the declared ones (each block
    where its first line was)."""
    lines = source.split("\n")
    for declaration, table in ((keys, "KEYS"), (args, "ARGV")):
        found = [
            i
            for i, line in enumerate(lines)
            if (m := _LINE.match(line.strip())) and (m["table"] or m["rest_of"]) == table
        ]
        if not found:
            raise SeamMismatch(f"no {table} block to rewrite")
        for i in reversed(found):
            del lines[i]
        lines[found[0] : found[0]] = header(declaration, table)
    return "\n".join(lines)
