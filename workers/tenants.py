"""Tenant ids and the Redis keys built from them.

Every key of a tenant starts with ``{tenant}:`` — a Redis Cluster hash tag, so one
tenant's keys share a slot (Lua scripts may touch them together) and can be found,
measured, exported and erased with one ``SCAN MATCH {tenant}:*``.

>>> key("acme", "user", "u1")
'{acme}:user:u1'
"""

from __future__ import annotations

import re

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Ids that end up inside keys (users, tracks, streams, events): no braces, no spaces.
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


class InvalidTenantError(ValueError):
    """A tenant id that does not match the contract's pattern."""


def validate_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidTenantError(
            f"invalid tenant id {tenant!r}: must match {TENANT_PATTERN.pattern}"
        )
    return tenant


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def prefix(tenant: str) -> str:
    """The key prefix of one tenant, e.g. ``{acme}:``."""
    return "{" + validate_tenant(tenant) + "}:"


def key(tenant: str, *parts: str | int) -> str:
    """Build a tenant key; parts are ids already validated against ``ID_PATTERN``."""
    return prefix(tenant) + ":".join(str(part) for part in parts)
