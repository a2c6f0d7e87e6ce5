"""The tenants' listening models in memory: ``listening.lua``'s evidence, references and
segments step by step, by the reference implementations they mirror (``core/models``), for
``MemoryStore``. The store contract tests compare the two."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from workers.core.behaviour import (
    LISTENER_FEATURES,
    TRACK_FEATURES,
    listener_features,
    shrink,
    track_features,
)
from workers.core.listening_state import (
    ForecasterStats,
    ListeningUpdate,
    ModelsAfter,
    Ranked,
    UserState,
)
from workers.core.models.accounts import member_hash, track_hash
from workers.core.models.evidence import (
    BUCKET_MS,
    AccountEvidence,
    ListenerEvidence,
    TrackEvidence,
    add_listen,
    fold_listener,
)
from workers.core.models.reference import REFIT_EVERY, Reference
from workers.core.models.segments import Segmenter
from workers.state import keys

__all__ = ["Listened", "TenantModels"]

GROUP_CONCENTRATION, GROUP_ARRIVALS, ESTABLISHED = 3.0, 3.0, 20


@dataclass(frozen=True, slots=True)
class Listened:
    """What the models made of one event, before the forecaster."""

    listener: Ranked
    track: Ranked
    account: AccountEvidence
    sync: float
    track_evidence: TrackEvidence
    track_published: str
    track_groups: tuple[str, ...]
    segment: int
    inputs: int

    def after(self, forecaster: ForecasterStats) -> ModelsAfter:
        """The models' reply, with the forecaster's part."""
        return ModelsAfter(
            listener=self.listener,
            track=self.track,
            forecaster=forecaster,
            account=self.account,
            sync=self.sync,
            track_listens=self.track_evidence.p,
            track_suspicion=self.track_evidence.s,
            track_published=self.track_published,
            track_groups=self.track_groups,
            inputs=self.inputs,
            segment=self.segment,
        )


def _published_score(marker: str) -> float:
    head = marker.partition("|")[0]
    try:
        return float(head) if head else 0.0
    except ValueError:
        return 0.0


@dataclass
class TenantModels:
    size: int = 1000
    listeners: Reference = field(init=False)
    tracks: Reference = field(init=False)
    segmenter: Segmenter = field(default_factory=lambda: Segmenter(dims=len(LISTENER_FEATURES)))
    #: per user key / track key: evidence; per track key: its verdict last published
    listener_evidence: dict[str, ListenerEvidence] = field(default_factory=dict)
    track_evidence: dict[str, TrackEvidence] = field(default_factory=dict)
    track_markers: dict[str, str] = field(default_factory=dict)
    track_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accounts: dict[str, AccountEvidence] = field(default_factory=dict)
    #: per user key: the track and 10-minute bucket of their last listen ("lb")
    last_listen: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: events learnt
    inputs: int = 0

    def __post_init__(self) -> None:
        self.listeners = Reference(tuple(f.name for f in LISTENER_FEATURES), size=self.size)
        self.tracks = Reference(tuple(f.name for f in TRACK_FEATURES), size=self.size)

    def listen(
        self,
        u: ListeningUpdate,
        user: UserState,
        *,
        user_key: str,
        track_key: str,
        listens: int,
        applied: bool,
    ) -> Listened:
        """listening.lua from the evidence on: ``listens`` is the listener's listens of the
        track so far (0 beyond the kept ones), ``applied`` a first read."""
        tev = self.track_evidence.get(track_key, TrackEvidence())
        lev = self.listener_evidence.get(user_key, ListenerEvidence())
        account = self.accounts.get(user_key, AccountEvidence())
        n = user.plays + user.skips
        if applied and u.type in ("play", "skip"):
            loyalty = listens / n if listens > 0 and n > 0 else 0.0
            suspicion = max(0.0, (_published_score(account.published) - 0.5) / 0.5)
            bucket = u.listener_ts // BUCKET_MS
            last_track, last_bucket = self.last_listen.get(user_key, ("", 0))
            again = last_track == u.track_id and abs(last_bucket - bucket) <= 1
            self.last_listen[user_key] = (u.track_id, bucket)
            tev, burst = add_listen(
                tev,
                ts=u.listener_ts,
                near30=u.near_30s,
                loyalty=loyalty,
                suspicion=suspicion,
                listens=listens,
                counted=not again,
            )
            lev = fold_listener(
                lev,
                tev,
                ts=u.listener_ts,
                burst=burst,
                near30=u.near_30s,
                listens=listens,
                loyalty=loyalty,
            )
            group, group_hash = account.group, account.group_hash
            concentrated = tev.p / max(tev.arrivals, 1e-9) >= GROUP_CONCENTRATION
            if burst or (concentrated and tev.arrivals >= GROUP_ARRIVALS):
                h = track_hash(u.track_id)
                if group_hash < 0 or h < group_hash:
                    group, group_hash = u.track_id, h
            account = replace(
                account, listens=account.listens + 1, group=group, group_hash=group_hash
            )
            if group and account.published.split("|")[1:2] == ["1"]:
                others = [g for g in self.track_groups.get(track_key, ()) if g != group]
                self.track_groups[track_key] = (group, *others[:2])
            self.track_evidence[track_key], self.listener_evidence[user_key] = tev, lev
            self.accounts[user_key] = account
        lx = listener_features(user, lev)
        observed = {f.name: lev.k if f.prior == 2.0 else float(n) for f in LISTENER_FEATURES}
        means = {name: self.listeners.mean(name) for name in self.listeners.features}
        lxs = shrink(lx, means, LISTENER_FEATURES, observed=observed)
        lranks = self.listeners.rank(lxs)
        tx = track_features(tev)
        tmeans = {name: self.tracks.mean(name) for name in self.tracks.features}
        txs = shrink(tx, tmeans, TRACK_FEATURES, observed=dict.fromkeys(tmeans, tev.p))
        tranks = self.tracks.rank(txs)
        track_published = self.track_markers.get(track_key, "")
        if applied:
            self.inputs += 1
            member = str(member_hash(u.user_id))
            if account.published.split("|")[1:2] == ["1"]:
                self.listeners.remove(member)
            elif n >= ESTABLISHED:
                self.listeners.upsert(member, int(member), lx)
            track_member = str(track_hash(u.track_id))
            if track_published.endswith("|1"):
                self.tracks.remove(track_member)
            elif tev.p >= ESTABLISHED:
                self.tracks.upsert(track_member, int(track_member), tx)
            if self.inputs % REFIT_EVERY == 0:
                self.listeners.refit()
                self.tracks.refit()
        standing = [
            1.0 - lranks[f.name].at_least / max(1, lranks[f.name].size) for f in LISTENER_FEATURES
        ]
        if applied:
            segment = self.segmenter.learn_predict_one(standing)
        else:
            segment = self.segmenter.predict_one(standing)
        group_key = keys.track(u.tenant, account.group) if account.group else ""
        group_marker = self.track_markers.get(group_key, "") if account.group else ""
        return Listened(
            listener=Ranked(lxs, lranks),
            track=Ranked(txs, tranks),
            account=replace(account, group_marker=group_marker),
            sync=lx["sync"],
            track_evidence=tev,
            track_published=track_published,
            track_groups=self.track_groups.get(track_key, ()),
            segment=segment,
            inputs=self.inputs,
        )
