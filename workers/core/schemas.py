"""The JSON Schemas in ``schemas/``, loaded and compiled once.

Valid input, the common case, is checked by fastjsonschema's compiled validators; invalid
input is explained by jsonschema (the reference implementation), whose messages name the
field. A property test checks both agree.

>>> SCHEMAS.first_error("listening.event", {"tenant": "acme"}) is not None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from workers.core.errors import Reason, Rejected

__all__ = [
    "REGISTRY_HEADER",
    "REGISTRY_MAGIC",
    "SCHEMAS",
    "VERSION",
    "SchemaSet",
    "json_input",
    "schema_dir",
    "unframe",
]

VERSION = "v1"


def schema_dir() -> Path:
    """``workers/_schemas`` in an installed wheel, else the repository's ``schemas/``."""
    packaged = Path(__file__).resolve().parents[1] / "_schemas"
    if packaged.is_dir():
        return packaged / VERSION
    return Path(__file__).resolve().parents[2] / "schemas" / VERSION


class SchemaSet:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @cached_property
    def validators(self) -> Mapping[str, Draft202012Validator]:
        found: dict[str, Draft202012Validator] = {}
        for path in sorted(self._directory.glob("*.json")):
            schema = orjson.loads(path.read_bytes())
            Draft202012Validator.check_schema(schema)
            found[path.stem] = Draft202012Validator(schema)
        return found

    @cached_property
    def _fast(self) -> Mapping[str, Any]:
        """Compiled validators for the hot path (~20x faster than jsonschema, measured)."""
        return {name: fastjsonschema.compile(dict(v.schema)) for name, v in self.validators.items()}

    def schema(self, name: str) -> Mapping[str, Any]:
        return self.validators[name].schema  # type: ignore[no-any-return]

    def first_error(self, name: str, instance: object) -> str | None:
        """None when valid, else a one-line description of the most relevant error."""
        try:
            self._fast[name](instance)
            return None
        except fastjsonschema.JsonSchemaValueException:
            pass  # explain it with jsonschema, whose messages point at the field
        validator = self.validators[name]
        if validator.is_valid(instance):  # the two disagree: trust the reference
            return None
        error = best_match(validator.iter_errors(instance))
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"[:500]


SCHEMAS = SchemaSet(schema_dir())


#: Confluent's Schema Registry wire format: magic byte 0, then a 4-byte schema id
REGISTRY_MAGIC, REGISTRY_HEADER = 0, 5


def unframe(value: bytes) -> bytes:
    """The JSON of a value, without the Schema Registry frame its producer's serializer may
    have put before it (magic byte 0 and a 4-byte schema id; the id is not checked). JSON
    text never starts with byte 0, so a plain value is returned as it is.

    >>> unframe(bytes([0, 0, 0, 0, 42]) + b'{"a": 1}'), unframe(b'{"a": 1}')
    (b'{"a": 1}', b'{"a": 1}')
    """
    if len(value) >= REGISTRY_HEADER and value[0] == REGISTRY_MAGIC:
        return value[REGISTRY_HEADER:]
    return value


def json_input(value: bytes | None, *, schema: str, max_bytes: int, what: str) -> Any:
    """An input record's JSON value (plain, or framed by a Schema Registry serializer:
    ``unframe``), decoded and checked against ``schema``; the dead-letter reason otherwise
    (``empty-value``, ``oversized``, ``malformed-json``, ``schema-invalid``).

    >>> json_input(b"[1, 2, 3]", schema="listening.event", max_bytes=4, what="event")
    Traceback (most recent call last):
    ...
    workers.core.errors.Rejected: oversized: 9 bytes exceeds 4
    """
    if not value:
        raise Rejected(Reason.EMPTY_VALUE, f"{what} has no value")
    if len(value) > max_bytes:
        raise Rejected(Reason.OVERSIZED, f"{len(value)} bytes exceeds {max_bytes}")
    try:
        body = orjson.loads(unframe(value))
    except orjson.JSONDecodeError as exc:
        raise Rejected(Reason.MALFORMED_JSON, str(exc)) from exc
    error = SCHEMAS.first_error(schema, body)
    if error is not None:
        raise Rejected(Reason.SCHEMA_INVALID, error)
    return body
