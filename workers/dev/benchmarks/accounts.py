"""Account and track verdicts judged on five listening populations, through the production
``ListeningStep`` (in-memory store: the same computation as Redis, HyperLogLogs included),
read as a consumer reads ``predictions.accounts`` and ``predictions.tracks``: the latest
verdict per listener and per track.

Tuned on: ``loadgen.ListeningPopulation``, ``populations.SessionPopulation`` and
``populations.PlaylistPopulation``. Held out (never tuned on, docs/models.md):
``holdout.MarketPopulation`` and ``radio.RadioPopulation``. Each runs ``hours`` of event
time. Reported per population, beside the best single feature chosen with the labels
(``listening_truth``) and trivial baselines: listener ROC AUC, bots flagged and people
flagged at the worker's own decision (``is_bot``), the best feature's recall at the same
share of people flagged, each farm's and each kind's accounts flagged, how many of a farm's
accounts share one ``group``, and for tracks the AUC of pushed tracks and the share flagged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from workers.core.records import ACCOUNTS, LISTENING_EVENTS, TRACKS, Record
from workers.dev.benchmarks.common import roc_auc
from workers.dev.benchmarks.listening_truth import Ledger, best_single, recall_at
from workers.dev.holdout import MarketPopulation
from workers.dev.loadgen import ListenEvent, ListeningPopulation
from workers.dev.populations import Account, PlaylistPopulation, SessionPopulation
from workers.dev.radio import RadioPopulation
from workers.dev.storefront import StorefrontPopulation
from workers.pipeline.listening import ListeningStep
from workers.state import MemoryStore
from workers.state.protocol import StateLimits

__all__ = ["Population", "Spec", "evaluate", "populations", "run_all", "segment_figures"]

HOUR = 3_600_000


class Population(Protocol):
    def events(self) -> Iterator[ListenEvent]: ...

    def truth(self) -> dict[str, Account]: ...


@dataclass(frozen=True)
class Spec:
    name: str
    held_out: bool
    make: Callable[[], Population]
    hours: int = 72
    #: stop after this many events, whatever the hours (a smoke run)
    max_events: int | None = None


class _Loadgen:
    """``loadgen.ListeningPopulation`` with the truth the others have."""

    def __init__(self, users: int, seed: int) -> None:
        self.population = ListeningPopulation("eval", users=users, bot_share=0.015, seed=seed)

    def events(self) -> Iterator[ListenEvent]:
        return self.population.events()

    def truth(self) -> dict[str, Account]:
        p = self.population
        return {
            f"u{u}": Account(
                f"u{u}",
                p.style(u) or "person",
                p.is_bot(u),
                "farm" if p.style(u) == "farm" else None,
            )
            for u in range(p.users)
        }


def populations(scale: float = 1.0, hours: int = 72, max_events: int | None = None) -> list[Spec]:
    """The six populations; ``scale`` the number of listeners of those tuned on."""
    people = max(100, int(1200 * scale))
    cap = max_events
    return [
        Spec("loadgen", False, lambda: _Loadgen(max(200, int(2000 * scale)), 1), hours, cap),
        Spec(
            "sessions", False, lambda: SessionPopulation("eval", seed=2, people=people), hours, cap
        ),
        Spec(
            "playlists",
            False,
            lambda: PlaylistPopulation("eval", seed=3, people=people),
            hours,
            cap,
        ),
        Spec("market", True, lambda: MarketPopulation("eval", seed=21, hours=hours), hours, cap),
        Spec("radio", True, lambda: RadioPopulation("eval", seed=22, hours=hours), hours, cap),
        Spec(
            "storefront",
            True,
            lambda: StorefrontPopulation("eval", seed=23, hours=hours),
            hours,
            cap,
        ),
    ]


def _pushed(population: Population, ledger: Ledger, truth: dict[str, Account]) -> set[str]:
    """The tracks farms push: the population's own list, else those at least half of whose
    listens (and ten or more) come from bots."""
    named = getattr(population, "pushed", None)
    if named is not None:
        return set(named())
    bots: Counter[str] = Counter()
    every: Counter[str] = Counter()
    for track, _, user, _ in ledger.listens:
        every[track] += 1
        bots[track] += truth[user].is_bot
    return {t for t, n in every.items() if bots[t] >= 10 and bots[t] >= n / 2}


async def evaluate(spec: Spec, *, limits: StateLimits | None = None) -> dict[str, Any]:
    population = spec.make()
    truth = population.truth()
    step = ListeningStep(
        tenants=["eval"], store=MemoryStore(limits=limits or StateLimits()), window_s=3600
    )
    accounts: dict[str, dict[str, Any]] = {}
    tracks: dict[str, dict[str, Any]] = {}
    ledger = Ledger()
    stream = population.events()
    batch: list[Record] = []
    start = end = None
    offset = 0
    while True:
        body = next(stream, None)
        body_fields = body.fields if body is not None else None
        if body_fields is not None:
            ts = int(body_fields["ts"])  # type: ignore[call-overload]
            start = ts if start is None else start
            end = start + spec.hours * HOUR
        if body_fields is None or ts >= end or offset == spec.max_events:  # type: ignore[operator]
            body_fields = None
        else:
            ledger.add(body_fields)
            key = f"eval/{body_fields['user_id']}".encode()
            batch.append(Record(LISTENING_EVENTS, 0, offset, key, orjson.dumps(body_fields)))
            offset += 1
        if len(batch) == 500 or (body_fields is None and batch):
            for outcome in await step.process_batch(batch):
                if outcome.on_delivered is not None:  # as the broker would: acknowledged
                    outcome.on_delivered(True)
                for output in outcome.outputs:
                    if output.topic == ACCOUNTS:
                        value = dict(output.value)  # type: ignore[arg-type]
                        accounts[value["user_id"]] = value
                    elif output.topic == TRACKS:
                        value = dict(output.value)  # type: ignore[arg-type]
                        tracks[value["track_id"]] = value
            await step.noted()
            batch = []
        if body_fields is None:
            break
    return _figures(
        population, truth=truth, ledger=ledger, accounts=accounts, tracks=tracks, events=offset
    )


def _figures(
    population: Population,
    *,
    truth: dict[str, Account],
    ledger: Ledger,
    accounts: dict[str, dict[str, Any]],
    tracks: dict[str, dict[str, Any]],
    events: int,
) -> dict[str, Any]:
    listener_x, track_x = ledger.features()
    users = sorted(u for u, me in ledger.listeners.items() if me.listens >= 5)
    y = np.array([truth[u].is_bot for u in users])
    latest = {u: accounts.get(u, {"score": 0.5, "is_bot": False, "group": None}) for u in users}
    s = np.array([latest[u]["score"] for u in users])
    flagged = np.array([latest[u]["is_bot"] for u in users])
    best, best_auc, aucs = best_single(listener_x, users, y)
    best_values = np.array([listener_x[u][best] for u in users])
    if roc_auc(best_values, y) < 0.5:
        best_values = -best_values
    people_flagged = float(flagged[~y].mean()) if (~y).any() else float("nan")
    farms = {}
    for farm in sorted({truth[u].farm for u in users if truth[u].farm}):  # type: ignore[type-var]
        members = [u for u in users if truth[u].farm == farm]
        groups = Counter(latest[u]["group"] for u in members if latest[u]["group"])
        farms[str(farm)] = {
            "accounts": len(members),
            "flagged": int(sum(latest[u]["is_bot"] for u in members)),
            "sharing_one_group": max(groups.values()) if groups else 0,
        }
    by_kind = {}
    for kind in sorted({truth[u].kind for u in users}):
        members = [u for u in users if truth[u].kind == kind]
        by_kind[kind] = {
            "bot": truth[members[0]].is_bot,
            "accounts": len(members),
            "flagged": int(sum(latest[u]["is_bot"] for u in members)),
        }
    pushed = _pushed(population, ledger, truth)
    judged_tracks = sorted(t for t, x in track_x.items() if x["listens per listener"] > 0)
    counts = Counter(track for track, _, _, _ in ledger.listens)
    judged_tracks = [t for t in judged_tracks if counts[t] >= 5]
    ty = np.array([t in pushed for t in judged_tracks])
    ts_ = np.array([tracks.get(t, {}).get("score", 0.0) for t in judged_tracks])
    tflag = np.array([bool(tracks.get(t, {}).get("is_suspicious", False)) for t in judged_tracks])
    t_best, t_best_auc, t_aucs = best_single(track_x, judged_tracks, ty)
    return {
        "events": events,
        "listeners": len(users),
        "bots": int(y.sum()),
        "roc_auc": roc_auc(s, y),
        "best_feature": best,
        "best_feature_auc": best_auc,
        "feature_aucs": aucs,
        "bots_flagged": float(flagged[y].mean()) if y.any() else float("nan"),
        "people_flagged": people_flagged,
        "best_feature_bots_flagged_at_same_people_flagged": recall_at(
            best_values, y, max(people_flagged, 1e-9)
        ),
        "best_feature_bots_flagged_at_1pct_people": recall_at(best_values, y, 0.01),
        "model_bots_flagged_at_1pct_people": recall_at(s, y, 0.01),
        "farms": farms,
        "by_kind": by_kind,
        "tracks": {
            "judged": len(judged_tracks),
            "pushed": int(ty.sum()),
            "roc_auc": roc_auc(ts_, ty),
            "pushed_flagged": float(tflag[ty].mean()) if ty.any() else float("nan"),
            "others_flagged": float(tflag[~ty].mean()) if (~ty).any() else float("nan"),
            "best_feature": t_best,
            "best_feature_auc": t_best_auc,
            "feature_aucs": t_aucs,
        },
        "segments": segment_figures(
            [accounts.get(u, {}).get("segment") for u in users], [truth[u].kind for u in users]
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


async def run_all(
    scale: float = 1.0, hours: int = 72, max_events: int | None = None
) -> dict[str, dict[str, Any]]:
    out = {}
    for spec in populations(scale, hours, max_events):
        out[spec.name] = {"held_out": spec.held_out, **await evaluate(spec)}
    return out


def table(results: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(
        title="Account and track verdicts (predictions.accounts, predictions.tracks), "
        "the latest per listener and per track",
        title_justify="left",
    )
    for col in (
        "population",
        "listeners (bots)",
        "ROC AUC",
        "best single feature (AUC)",
        "bots flagged",
        "people flagged",
        "best feature at that rate",
        "farms: flagged / accounts (sharing a group)",
        "tracks: AUC (best feature), pushed / others flagged",
    ):
        out.add_column(col, justify="right")
    for name, r in results.items():
        farms = ", ".join(
            f"{farm} {f['flagged']}/{f['accounts']} ({f['sharing_one_group']})"
            for farm, f in r["farms"].items()
        )
        t = r["tracks"]
        out.add_row(
            f"{name}{' (held out)' if r['held_out'] else ''}",
            f"{r['listeners']} ({r['bots']})",
            f"{r['roc_auc']:.3f}",
            f"{r['best_feature']} ({r['best_feature_auc']:.3f})",
            f"{r['bots_flagged']:.0%}",
            f"{r['people_flagged']:.2%}",
            f"{r['best_feature_bots_flagged_at_same_people_flagged']:.0%}",
            farms,
            f"{t['roc_auc']:.3f} ({t['best_feature']} {t['best_feature_auc']:.3f}), "
            f"{t['pushed_flagged']:.0%} / {t['others_flagged']:.1%}",
        )
    return out
