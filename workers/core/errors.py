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
    #: f32 samples far outside full scale (|x| > 16): not audio, or the wrong encoding
    SAMPLES_OUT_OF_RANGE = "samples-out-of-range"
    #: strict isolation: the header or body names another tenant than the topic's owner
    TENANT_MISMATCH = "tenant-mismatch"
    #: the state store refused the change for good (a key of another type, a bad value):
    #: retrying cannot help, so only this record stops, not its partition
    STATE_ERROR = "state-error"
    #: the tenant created more new ids (listeners, tracks, streams) today than allowed
    QUOTA_EXCEEDED = "quota-exceeded"
    #: the listener was erased after this record was published (its value is dropped)
    SUBJECT_ERASED = "subject-erased"
    #: an output of this record was refused by the broker (too large for its topic, not
    #: authorised); the dead letter replaces that output
    OUTPUT_REJECTED = "output-rejected"
    INTERNAL_ERROR = "internal-error"


class Rejected(Exception):
    """An input that cannot be processed: it becomes exactly one dead letter."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail[:500]
