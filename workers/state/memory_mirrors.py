"""What the listening scripts do beside the listening models, mirrored for the in-memory
store: ``clock.lua``'s low watermark, ``listening.lua``'s co-listening, recent plays and
"popular now", and how it runs ``forecaster.lua`` (``MemoryStore`` keeps the hashes, lists
and sorted sets)."""

from __future__ import annotations

from collections.abc import Sequence

from workers.core import colisten
from workers.core.listening_state import ForecasterStats, ListeningUpdate
from workers.core.models.popularity import (
    HOUR_MS,
    LABELS_BEHIND,
    Profile,
    Series,
    day_windows,
    experts,
    weights,
)
from workers.state import keys
from workers.state.listening_command import WAITING_FOR_MS

__all__ = ["advance_clock", "co_listen", "forecast_popularity"]


def advance_clock(
    clock: dict[str, int],
    now_ms: int,
    *,
    times: Sequence[tuple[int, int]],
    waiting: Sequence[int],
    idle_ms: int,
) -> int:
    """clock.lua: the partitions' newest event times and which have records waiting, then
    the low watermark (-1: not known)."""
    since = clock.setdefault("since", now_ms)
    for partition, newest in times:
        clock[f"p{partition}"] = max(clock.get(f"p{partition}", newest), newest)
        clock[f"w{partition}"] = now_ms
    for partition in waiting:
        clock[f"q{partition}"] = now_ms
    fresh = now_ms - WAITING_FOR_MS
    at = {n[1:]: v for n, v in clock.items() if n.startswith("p")}
    queued = {n[1:] for n, v in clock.items() if n.startswith("q") and v >= fresh}
    low = -1
    if now_ms - since >= idle_ms and queued <= set(at):
        held = [
            v for n, v in at.items() if n in queued or clock.get(f"w{n}", 0) >= now_ms - idle_ms
        ]
        low = min(held, default=-1)
    clock["low"] = low
    return low


def co_listen(
    lists: dict[str, list[str]], zsets: dict[str, dict[str, float]], u: ListeningUpdate
) -> None:
    """listening.lua's co-listening: the play in its place in time among the listener's
    recent plays, the pairs it makes there and the one it undoes, popular now."""
    recent = lists[keys.recent(u.tenant, u.user_id)]
    half = colisten.CO_LISTEN_HALF_LIFE_MS
    epoch = colisten.epoch_of(u.listener_ts, half)
    origin = colisten.epoch_origin(u.listener_ts, half)
    plays = [(item.rpartition("|")[0], int(item.rpartition("|")[2])) for item in recent]
    at = next((i for i, (_, ts) in enumerate(plays) if ts <= u.listener_ts), len(plays))
    if at < colisten.RECENT_KEPT:
        me = (u.track_id, u.listener_ts)
        newer = plays[at - 1] if at > 0 else None
        older = plays[at] if at < len(plays) else None
        for a, b, sign in ((older, newer, -1.0), (older, me, 1.0), (me, newer, 1.0)):
            if a is None or b is None or a[0] == b[0] or b[1] - a[1] > colisten.SESSION_GAP_MS:
                continue
            w = sign * colisten.weight_at(b[1], origin, half)
            for x, y in ((a[0], b[0]), (b[0], a[0])):
                pairs = zsets[keys.co_listen(u.tenant, epoch, x)]
                pairs[y] = pairs.get(y, 0.0) + w
                if w < 0 and pairs[y] <= -w * 1e-9:
                    del pairs[y]
                elif w > 0 and pairs[y] == w:
                    _bounded(pairs, colisten.CO_LISTEN_TOP)
    recent.insert(at, f"{u.track_id}|{u.listener_ts}")
    del recent[colisten.RECENT_KEPT :]
    pop_epoch, pop_weight = colisten.decayed(u.listener_ts, colisten.POPULAR_HALF_LIFE_MS)
    popular = zsets[keys.popular(u.tenant, pop_epoch)]
    if not popular:
        old = zsets.get(keys.popular(u.tenant, pop_epoch - 1), {})
        best = sorted(old.items(), key=lambda kv: (-kv[1], kv[0]))[: colisten.POPULAR_TOP]
        popular.update({k: v * 2.0**-colisten.EPOCH_HALF_LIVES for k, v in best})
    popular[u.track_id] = popular.get(u.track_id, 0.0) + pop_weight
    _bounded(popular, colisten.POPULAR_TOP)


def _bounded(scores: dict[str, float], top: int) -> None:
    """Cut a set holding more than twice ``top`` back to its ``top`` (as ZREMRANGEBYRANK:
    the lowest scores go, ties by member)."""
    if len(scores) > 2 * top:
        for member, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]))[: len(scores) - top]:
            del scores[member]


def forecast_popularity(
    profile: Profile,
    series: Series,
    meta: dict[str, int | str],
    u: ListeningUpdate,
    *,
    current: int,
    previous: int,
    window_ms: int,
    forgetting: float,
    learn: bool,
    teach: bool,
    low_window: int | None,
) -> ForecasterStats:
    """forecaster.lua as listening.lua runs it: a play (``teach``) goes into the tenant's
    profile and the track's levels; the track's forecasts the low watermark and its own
    plays have passed by a whole window are learnt once (``learn``); the experts forecast
    the next window, and (``teach``) that forecast waits in ``meta`` for its label."""
    if teach and u.type == "play":
        profile.add(u.ts)
        share = profile.share(u.ts // HOUR_MS % 24, u.ts)
        series.add(u.ts, share, window=u.window, day_windows=day_windows(window_ms))
    if learn and low_window is not None:
        for x in range(u.window - LABELS_BEHIND, u.window + 2):
            pending = meta.get(f"{x}:fc")
            if pending is not None and x < min(low_window, u.window) - 1:
                forecast = tuple(float(v) for v in str(pending).split(","))
                profile.learn(series, forecast, int(meta.get(f"{x}:plays", 0)), forgetting)
                del meta[f"{x}:fc"]
    forecast = experts(
        profile,
        series,
        ts=u.ts,
        window=u.window,
        window_ms=window_ms,
        current=current,
        previous=previous,
    )
    if teach and (low_window is None or u.window + 1 >= low_window - 1):
        # six significant digits, as listening.lua keeps them (a compact hash value)
        meta[f"{u.window + 1}:fc"] = ",".join(format(v, ".6g") for v in forecast)
    return ForecasterStats(
        trained=profile.trained,
        mae=profile.mae,
        naive_mae=profile.naive_mae,
        seasonal_mae=profile.seasonal_mae,
        forecast=forecast,
        weights=weights(profile, series, forgetting),
    )
