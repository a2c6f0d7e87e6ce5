"""A token bucket per tenant: each tenant's share of a piece of work, so one tenant's flood
cannot take it from the others (pure: the clock is passed in).

>>> buckets = TenantBuckets(rate=2.0, burst=2.0)
>>> [buckets.take("acme", now_s=0.0) for _ in range(3)], buckets.take("beats", now_s=0.0)
([True, True, False], True)
>>> buckets.take("acme", now_s=0.5)  # half a second refills one token
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TenantBuckets"]


@dataclass
class TenantBuckets:
    #: tokens a second per tenant (0: no limit), and how many may be saved up
    rate: float
    burst: float
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, tenant: str, *, now_s: float) -> bool:
        """One token of ``tenant``'s, if it has one."""
        if self.rate <= 0:
            return True
        tokens, at = self._tokens.get(tenant, (self.burst, now_s))
        tokens = min(self.burst, tokens + (now_s - at) * self.rate)
        if tokens < 1.0:
            self._tokens[tenant] = (tokens, now_s)
            return False
        self._tokens[tenant] = (tokens - 1.0, now_s)
        return True
