"""What the demo counts as its load runs, and the tables it shows: live progress and the
summary (inputs and outputs, verdicts, latency beside the floor's)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rich.console import Group
from rich.table import Table

from workers.core.records import (
    ACCOUNTS,
    ANOMALY,
    AUDIO_CHUNKS,
    DEADLETTER,
    LISTENING_EVENTS,
    OUTPUT_TOPICS,
    RECOMMENDATIONS,
    TAGS,
    TRACKS,
)
from workers.dev.client import Received

__all__ = ["BUDGET_MS", "Tally", "progress", "summary"]

BUDGET_MS = 10.0
#: what the live load produces: recommendations are asked for after it, and counted there
LIVE_TOPICS = tuple(topic for topic in OUTPUT_TOPICS if topic != RECOMMENDATIONS)


@dataclass
class Tally:
    #: the topic where the outputs that are timed arrive
    outputs: str = ANOMALY
    started: float = field(default_factory=time.monotonic)
    sent: Counter[str] = field(default_factory=Counter)
    bad_sent: int = 0
    #: listening events sent as the tenants' history before the load (answered, not timed)
    history_sent: int = 0
    received: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    worker_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"audio": [], "listening": []}
    )
    e2e_ms: dict[str, list[float]] = field(default_factory=lambda: {"audio": [], "listening": []})
    sent_at: dict[tuple[str, str, str], float] = field(default_factory=dict)
    bot_users: set[tuple[str, str]] = field(default_factory=set)
    flagged: Counter[str] = field(default_factory=Counter)
    #: each listener's latest account verdict (is_bot), as a consumer of the changelog
    verdicts: dict[tuple[str, str], bool] = field(default_factory=dict)
    #: each track's latest verdict, as a consumer of that changelog
    tracks: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    #: each stream's latest tags (the tagger's running aggregate)
    tags: dict[str, dict[str, object]] = field(default_factory=dict)
    #: the timed outputs seen, one per input (kind, tenant, "subject/ref")
    answered: set[tuple[str, str, str]] = field(default_factory=set)
    #: count only the timed outputs of inputs this tally sent (after a history, whose
    #: outputs another tally counted)
    own_only: bool = False

    def send(self, key: tuple[str, str, str]) -> None:
        """An input is sent now: its output will be timed from here."""
        self.sent_at[key] = time.time()
        self.answered.discard(key)

    def on_message(self, r: Received) -> None:
        body: dict[str, object] = {}
        if r.topic == self.outputs and self.outputs == ANOMALY:
            body = r.json()
            key = (str(body["kind"]), str(body["tenant"]), f"{body['subject']}/{body['ref']}")
            if self.own_only and key not in self.sent_at and key not in self.answered:
                return
            self.answered.add(key)
        self.received[r.topic] += 1
        if r.topic == DEADLETTER:
            self.reasons[r.header("error") or "?"] += 1
            return
        if r.topic == ACCOUNTS:
            body = r.json()
            self.verdicts[(str(body["tenant"]), str(body["user_id"]))] = bool(body["is_bot"])
            return
        if r.topic == TRACKS:
            body = r.json()
            self.tracks[(str(body["tenant"]), str(body["track_id"]))] = body
            return
        if r.topic == TAGS:
            self.tags[(r.key or b"").decode()] = r.json()
            return
        if r.topic != self.outputs:
            return
        body = body or r.json()
        kind, tenant = str(body["kind"]), str(body["tenant"])
        self.worker_ms[kind].append(float(body["latency_ms"]))  # type: ignore[arg-type]
        sent = self.sent_at.pop((kind, tenant, f"{body['subject']}/{body['ref']}"), None)
        if sent is not None:
            self.e2e_ms[kind].append((r.arrived - sent) * 1000.0)
        if body["is_anomaly"]:
            self.anomalies[kind] += 1
            if kind == "listening":
                is_bot = (tenant, str(body["subject"])) in self.bot_users
                self.flagged["bot" if is_bot else "human"] += 1

    @property
    def inputs(self) -> int:
        return sum(self.sent.values())

    def accounted(self) -> int:
        """Inputs that ended as their outputs (one anomaly each) or as one dead letter."""
        return self.received[self.outputs] + self.received[DEADLETTER]


def _pct(values: list[float], q: float) -> str:
    return f"{_q(values, q):.2f}" if values else "-"


def progress(t: Tally, phase: str) -> Table:
    table = Table(
        title=f"workers demo — {phase} — {time.monotonic() - t.started:5.1f} s",
        title_justify="left",
    )
    table.add_column("inputs sent")
    table.add_column("", justify="right")
    table.add_column("outputs read")
    table.add_column("", justify="right")
    inputs = [
        ("audio chunks", t.sent[AUDIO_CHUNKS]),
        ("listening events", t.sent[LISTENING_EVENTS]),
        ("bad on purpose", t.bad_sent),
        ("accounted for", t.accounted()),
    ]
    topics = LIVE_TOPICS if t.outputs == ANOMALY else (t.outputs,)
    outputs = [(topic, t.received[topic]) for topic in topics]
    if t.outputs == ANOMALY:
        outputs.append(("anomalies", sum(t.anomalies.values())))
    for (a, n), (b, m) in itertools.zip_longest(inputs, outputs, fillvalue=("", "")):
        table.add_row(a, str(n), b, str(m))
    inside = t.worker_ms["audio"] + t.worker_ms["listening"]
    table.add_row("", "", "in process p50 / p99 ms", f"{_pct(inside, 50)} / {_pct(inside, 99)}")
    return table


def _counts(t: Tally) -> Table:
    counts = Table(title="Inputs and outputs", title_justify="left")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    counts.add_row("history sent first (answered, not timed)", str(t.history_sent))
    counts.add_row("audio chunks sent", str(t.sent[AUDIO_CHUNKS]))
    counts.add_row("listening events sent", str(t.sent[LISTENING_EVENTS]))
    counts.add_row("  of which bad on purpose", str(t.bad_sent))
    for topic in LIVE_TOPICS:
        counts.add_row(f"→ {topic}", str(t.received[topic]))
    counts.add_row(f"→ {RECOMMENDATIONS}", "asked after the load: below")
    counts.add_row("inputs accounted for", f"{t.accounted()} / {t.inputs}")
    counts.add_row("anomalies: audio", str(t.anomalies["audio"]))
    counts.add_row("anomalies: listening", str(t.anomalies["listening"]))
    counts.add_row(
        "  flagged events from bots / humans", f"{t.flagged['bot']} / {t.flagged['human']}"
    )
    bots = [v for k, v in t.verdicts.items() if k in t.bot_users]
    people = [v for k, v in t.verdicts.items() if k not in t.bot_users]
    counts.add_row(
        "account verdicts: bots / people judged bots",
        f"{sum(bots)} of {len(bots)} / {sum(people)} of {len(people)}",
    )
    pushed = sorted(
        ((k, v) for k, v in t.tracks.items() if v["is_suspicious"]),
        key=lambda item: -float(item[1]["score"]),  # type: ignore[arg-type]
    )
    counts.add_row(
        "tracks judged pushed",
        ", ".join(
            f"{tenant}/{track} ({float(v['artificial_share']):.0%} artificial)"  # type: ignore[arg-type]
            for (tenant, track), v in pushed[:8]
        )
        + (f" and {len(pushed) - 8} more" if len(pushed) > 8 else "")
        or "none",
    )
    for reason, n in sorted(t.reasons.items()):
        counts.add_row(f"dead letters: {reason}", str(n))
    return counts


def _q(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(t: Tally, floor: Tally) -> Group:
    latency = Table(
        title=f"Latency, ms (budget {BUDGET_MS:.0f} ms per event)", title_justify="left"
    )
    for col in ("path", "p50", "p99", "max", "× floor p50", "× floor p99", "p99 ≤ budget"):
        latency.add_column(col, justify="right")
    for kind in ("audio", "listening"):
        base = floor.e2e_ms[kind]
        rows = (
            ("floor", base, False),
            ("worker", t.e2e_ms[kind], True),
            ("in worker", t.worker_ms[kind], False),
        )
        for label, values, compare in rows:
            latency.add_row(
                f"{kind} · {label}",
                _pct(values, 50),
                _pct(values, 99),
                f"{max(values):.2f}" if values else "-",
                f"{_q(values, 50) / _q(base, 50):.2f}" if compare and base else "",
                f"{_q(values, 99) / _q(base, 99):.2f}" if compare and base else "",
                "yes" if _q(values, 99) <= BUDGET_MS else "no",
            )
    own = " · ".join(
        f"{kind} {_q(t.e2e_ms[kind], 50) - _q(floor.e2e_ms[kind], 50):.1f} ms"
        for kind in ("audio", "listening")
    )
    note = (
        "floor, worker: end to end (sent → output read); in worker: fetched → output handed "
        "to the producer. The floor is a do-nothing consume → produce loop with the worker's "
        "client and settings, on the same broker, under the same load, in this run: what "
        "any process pays here before doing any work. The worker's own share at p50 (worker "
        f"minus floor): {own}."
    )
    return Group(_counts(t), latency, note)
