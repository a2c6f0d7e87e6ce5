"""Tenant ids and the ids that become parts of Redis keys (users, tracks, streams, events).

>>> validate_tenant("acme")
'acme'
"""

from __future__ import annotations

import re

__all__ = ["ID_PATTERN", "TENANT_PATTERN", "InvalidTenantError", "is_valid_id", "validate_tenant"]

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
