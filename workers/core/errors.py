"""Stable reason codes for dead letters. Consumers and alerts key on these strings."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason", "Rejected"]


class Reason(StrEnum):
    """Why an input became a dead letter. Values are part of the contract: never rename."""

    EMPTY_VALUE = "empty-value"
    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed-json"
    SCHEMA_INVALID = "schema-invalid"
    BAD_HEADERS = "bad-headers"
    BAD_KEY = "bad-key"
    UNKNOWN_TENANT = "unknown-tenant"
    TRUNCATED_PCM = "truncated-pcm"
    NON_FINITE_SAMPLES = "non-finite-samples"
    DUPLICATE_EVENT = "duplicate-event"
    DUPLICATE_CHUNK = "duplicate-chunk"
    TIMESTAMP_OUT_OF_RANGE = "timestamp-out-of-range"
    #: strict isolation: the header or body names another tenant than the topic's owner
    TENANT_MISMATCH = "tenant-mismatch"
    INTERNAL_ERROR = "internal-error"


class Rejected(Exception):
    """An input that cannot be processed: it becomes exactly one dead letter."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail[:500]
