"""The Redis keys of a tenant's state.

Every key of a tenant starts with ``{tenant}:`` — a Redis Cluster hash tag, so one
tenant's keys share a slot (Lua scripts may touch them together) and can be found,
measured, exported and erased with one ``SCAN MATCH {tenant}:*``.

>>> key("acme", "user", "u1")
'{acme}:user:u1'
"""

from __future__ import annotations

from workers.core.tenants import validate_tenant

__all__ = ["key", "prefix"]


def prefix(tenant: str) -> str:
    """The key prefix of one tenant, e.g. ``{acme}:``."""
    return "{" + validate_tenant(tenant) + "}:"


def key(tenant: str, *parts: str | int) -> str:
    """Build a tenant key; parts are ids already validated against ``ID_PATTERN``."""
    return prefix(tenant) + ":".join(str(part) for part in parts)
