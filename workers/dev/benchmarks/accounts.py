"""Account verdicts judged per listener on three independent populations.

Each population's events go through the production ``ListeningStep`` (in-memory store,
the same computation as Redis); the verdicts it publishes on ``predictions.accounts`` are
read as a consumer would: the latest per listener. Reported per population: listener-level
ROC AUC of the latest score, recall of bot accounts and share of people alarmed at the
worker's own decision (``is_bot``), each farm's accounts flagged and grouped, and the best
single hand rule on the same data (computed from the raw events) as the baseline.

The account model was tuned on ``tuned-on`` (``loadgen.ListeningPopulation``) only.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from workers.core.records import ACCOUNTS, LISTENING_EVENTS, Record
from workers.dev.benchmarks.common import roc_auc
from workers.dev.loadgen import ListenEvent, ListeningPopulation
from workers.dev.populations import Account, PlaylistPopulation, SessionPopulation
from workers.pipeline.listening import ListeningStep
from workers.state import MemoryStore

__all__ = ["evaluate", "populations"]


@dataclass
class _Habits:
    """Per listener, from the raw events: what the hand rules look at."""

    listens: int = 0
    near30: int = 0
    skips: int = 0
    hours: Counter[int] = field(default_factory=Counter)
    tracks: set[str] = field(default_factory=set)
    first: int = 0
    last: int = 0

    def add(self, body: dict[str, Any]) -> None:
        if body["type"] not in ("play", "skip"):
            return
        self.listens += 1
        self.near30 += int(30_000 <= int(body["ms_played"]) < 37_000)
        self.skips += int(body["type"] == "skip")
        self.hours[(int(body["ts"]) // 3_600_000) % 24] += 1
        self.tracks.add(str(body["track_id"]))
        self.first = self.first or int(body["ts"])
        self.last = int(body["ts"])

    def rules(self) -> dict[str, float]:
        n = max(1, self.listens)
        total = sum(self.hours.values())
        entropy = (
            -sum(c / total * math.log(c / total) for c in self.hours.values()) if total else 0.0
        )
        span_h = max(1.0, (self.last - self.first) / 3_600_000)
        return {
            "plays ending 30-37 s": self.near30 / n,
            "hours of the day covered": entropy,
            "listens per hour": self.listens / span_h,
            "few skips": -self.skips / n,
            "few distinct tracks": -len(self.tracks) / n,
        }


def populations(quick: bool) -> dict[str, tuple[Iterator[ListenEvent], dict[str, Account], int]]:
    """name -> (events, truth, how many events to stream)."""
    scale = 0.25 if quick else 1.0
    a = ListeningPopulation("eval", users=int(2000 * scale), bot_share=0.015, seed=1)
    truth_a = {
        f"u{u}": Account(
            f"u{u}",
            a.style(u) or "person",
            a.is_bot(u),
            "farm" if a.style(u) == "farm" else None,
        )
        for u in range(a.users)
    }
    b = SessionPopulation("eval", seed=2, people=int(1200 * scale))
    c = PlaylistPopulation("eval", seed=3, people=int(1200 * scale))
    n = int(60_000 * scale)
    return {
        "tuned-on (loadgen)": (a.events(), truth_a, n),
        "sessions (held out)": (b.events(), b.truth(), n),
        "playlists (held out)": (c.events(), c.truth(), n),
    }


async def evaluate(
    events: Iterator[ListenEvent], truth: dict[str, Account], n: int
) -> dict[str, Any]:
    step = ListeningStep(tenants=["eval"], store=MemoryStore(), window_s=3600)
    latest: dict[str, dict[str, Any]] = {}
    published = 0
    habits: dict[str, _Habits] = defaultdict(_Habits)
    batch: list[Record] = []
    for offset in range(n):
        body = next(events).fields
        habits[str(body["user_id"])].add(body)
        key = f"eval/{body['user_id']}".encode()
        batch.append(Record(LISTENING_EVENTS, 0, offset, key, orjson.dumps(body)))
        if len(batch) == 200 or offset == n - 1:
            for outcome in await step.process_batch(batch):
                if outcome.on_delivered is not None:  # as the broker would: acknowledged
                    outcome.on_delivered(True)
                for output in outcome.outputs:
                    if output.topic == ACCOUNTS:
                        value = dict(output.value)  # type: ignore[arg-type]
                        latest[value["user_id"]] = value
                        published += 1
            batch = []
    users = sorted(u for u in latest if habits[u].listens >= 5)
    y = np.array([truth[u].is_bot for u in users])
    s = np.array([latest[u]["score"] for u in users])
    flagged = np.array([latest[u]["is_bot"] for u in users])
    rules = {name: np.array([habits[u].rules()[name] for u in users]) for name in _Habits().rules()}
    rule_aucs = {name: roc_auc(v, y) for name, v in rules.items()}
    best_rule = max(rule_aucs, key=lambda k: rule_aucs[k])
    farms: dict[str, dict[str, Any]] = {}
    for farm in sorted({truth[u].farm for u in users if truth[u].farm}):  # type: ignore[type-var]
        members = [u for u in users if truth[u].farm == farm]
        groups = Counter(
            latest[u]["group"] for u in members if latest[u]["is_bot"] and latest[u]["group"]
        )
        farms[str(farm)] = {
            "accounts": len(members),
            "flagged": sum(latest[u]["is_bot"] for u in members),
            "largest_group": max(groups.values()) if groups else 0,
        }
    kinds = sorted({truth[u].kind for u in users})
    by_kind = {
        kind: {
            "accounts": sum(truth[u].kind == kind for u in users),
            "flagged": int(sum(latest[u]["is_bot"] for u in users if truth[u].kind == kind)),
        }
        for kind in kinds
    }
    return {
        "events": n,
        "listeners": len(users),
        "bots": int(y.sum()),
        "bot_event_share": float(
            sum(habits[u].listens for u in users if truth[u].is_bot)
            / max(1, sum(habits[u].listens for u in users))
        ),
        "verdicts_published": published,
        "verdicts_per_listener": published / max(1, len(latest)),
        "roc_auc": roc_auc(s, y),
        "recall_at_is_bot": float(flagged[y].mean()) if y.any() else float("nan"),
        "humans_alarmed": float(flagged[~y].mean()),
        "best_rule": best_rule,
        "best_rule_auc": rule_aucs[best_rule],
        "rule_aucs": rule_aucs,
        "farms": farms,
        "by_kind": by_kind,
        "segments": segment_figures(
            [latest[u].get("segment") for u in users], [truth[u].kind for u in users]
        ),
    }


def segment_figures(segments: list[Any], kinds: list[str]) -> dict[str, Any]:
    """How well the listener segments line up with the listeners' real kinds (person,
    bot styles): purity (each segment counted as its commonest kind) against the share
    of the commonest kind overall, and normalised mutual information (0: unrelated)."""
    pairs = [(s, k) for s, k in zip(segments, kinds, strict=True) if s is not None]
    n = len(pairs)
    if not n:
        return {}
    joint = Counter(pairs)
    by_segment = Counter(s for s, _ in pairs)
    by_kind = Counter(k for _, k in pairs)

    def entropy(counts: Counter[Any]) -> float:
        p = np.array(list(counts.values()), dtype=float) / n
        return float(-(p * np.log(p)).sum())

    mutual = sum(
        c / n * np.log((c / n) / ((by_segment[s] / n) * (by_kind[k] / n)))
        for (s, k), c in joint.items()
    )
    h_s, h_k = entropy(by_segment), entropy(by_kind)
    purity = sum(max(c for (s2, _), c in joint.items() if s2 == s) for s in by_segment) / n
    return {
        "segments_used": len(by_segment),
        "sizes": {str(s): c for s, c in sorted(by_segment.items())},
        "purity": purity,
        "purity_one_segment": max(by_kind.values()) / n,
        "nmi": float(mutual / np.sqrt(h_s * h_k)) if h_s > 0 and h_k > 0 else 0.0,
    }


async def run_all(quick: bool) -> dict[str, dict[str, Any]]:
    return {name: await evaluate(*spec) for name, spec in populations(quick).items()}


def table(results: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(
        title="Account verdicts per listener (predictions.accounts), tuned on the first only",
        title_justify="left",
    )
    for col in (
        "population",
        "listeners (bots)",
        "ROC AUC",
        "best single rule (AUC)",
        "bots flagged",
        "people flagged",
        "farms: flagged / accounts (largest group)",
        "segments: purity (one segment) / NMI",
    ):
        out.add_column(col, justify="right")
    for name, r in results.items():
        farms = ", ".join(
            f"{farm} {f['flagged']}/{f['accounts']} ({f['largest_group']})"
            for farm, f in r["farms"].items()
        )
        out.add_row(
            name,
            f"{r['listeners']} ({r['bots']})",
            f"{r['roc_auc']:.3f}",
            f"{r['best_rule']} ({r['best_rule_auc']:.3f})",
            f"{r['recall_at_is_bot']:.0%}",
            f"{r['humans_alarmed']:.1%}",
            farms,
            f"{r['segments']['purity']:.2f} ({r['segments']['purity_one_segment']:.2f}) / "
            f"{r['segments']['nmi']:.2f}",
        )
    return out
