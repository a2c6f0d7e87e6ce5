"""The third held-out listening population, ``StorefrontPopulation``: written before the
listening models' next revision, and run only once that revision was frozen (docs/models.md,
BENCHMARKS.md). A streaming service with a store front: people who browse the charts and
the new releases by their first half-minute, beside people who listen.

Hard negatives:
- **chart browsers** go down the charts a few times a day, 20-40 hits in a row, leaving each
  25-50 s in (the pattern a royalty farm's stops have, on tracks with large audiences);
- **curators** preview the week's new releases once a working day, 30-60 niche tracks in a
  row (each heard once), 30-45 s each: near-30 stops on tracks with small audiences;
- **gym-goers** play one workout playlist in full, an hour a day at the same time;
- **insomniacs** listen in the small hours and in the evening;
- **background listeners** keep a station on 10-14 h a day, full plays.

Farms:
- **blatant**: three targets around the clock, 31-34 s each;
- **slow farm**: 50 accounts, 6-10 listens a day at human hours, six in ten on 10 niche
  targets ended 31-40 s in, the rest hits played through;
- **synchronised farm**: 25 accounts, each with a human taste, hours and full plays; twice a
  day all of them start the same targets within two minutes;
- **stuffers**: 8 accounts on a 30-track loop holding 6 targets, 18 h a day, full plays;
- **rotating farm**: 40 accounts whose 10 niche targets change every day, 15-30 listens a
  day at human hours, each target play ended 45-70 s in (past the 30-40 s window).

>>> population = StorefrontPopulation("shop", seed=5, hours=6, people=30)
>>> sorted({a.kind for a in population.accounts if a.is_bot})
['blatant', 'rotating-farm', 'slow-farm', 'stuffer', 'sync-farm']
>>> times = [int(e.fields["ts"]) for e in population.events()]
>>> times == sorted(times) and len(times) > 100
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from workers.dev.holdout import DAY, HOUR, MINUTE, _Held, _Party

__all__ = ["StorefrontPopulation"]

Plan = Iterator[tuple[int, int, str, int]]
#: the hard negatives' shares of the people (the rest listen as people do)
KINDS = (
    ("chart-browser", 0.04),
    ("curator", 0.02),
    ("gym-goer", 0.04),
    ("insomniac", 0.03),
    ("background", 0.03),
)


@dataclass
class StorefrontPopulation(_Held):
    people: int = 1400
    catalogue: int = 25_000

    def populate(self) -> None:
        rng = self.rng
        for i in range(self.people):
            kind, roll = "person", rng.random()
            for name, share in KINDS:
                if roll < share:
                    kind = name
                    break
                roll -= share
            self.add(f"s{self.seed}-{i}", kind, False, self._human(kind))
        pick = self._new_releases
        blatant, slow, sync, stuffed = pick(3), pick(10), pick(8), pick(6)
        self._pushed |= {*blatant, *slow, *sync, *stuffed}
        for i in range(4):
            self.add(f"sb{self.seed}-{i}", "blatant", True, self._blatant(blatant), "blatant")
        for i in range(50):
            self.add(
                f"sl{self.seed}-{i}",
                "slow-farm",
                True,
                self._farmer(
                    [slow], per_day=(6, 10), awake_h=14, share=0.6, stop=(31_000, 40_000), full=0.8
                ),
                "slow-farm",
            )
        party = _Party(self, sync, members=25)
        for i in range(25):
            self.add(f"sy{self.seed}-{i}", "sync-farm", True, party.member(i), "sync-farm")
        loop = [self.hit() for _ in range(24)] + stuffed
        rng.shuffle(loop)
        for i in range(8):
            self.add(f"st{self.seed}-{i}", "stuffer", True, self._stuffer(loop), "stuffer")
        days = self.hours // 24 + 1
        rotation = [pick(10) for _ in range(days)]
        self._pushed |= {t for day in rotation for t in day}
        for i in range(40):
            plan = self._farmer(
                rotation, per_day=(15, 30), awake_h=15, share=0.7, stop=(45_000, 70_000),
                full=0.7, pause=MINUTE,
            )  # fmt: skip
            self.add(f"sr{self.seed}-{i}", "rotating-farm", True, plan, "rotating-farm")

    def _new_releases(self, k: int) -> list[int]:
        """``k`` tracks beyond the catalogue's first fifth: small audiences."""
        return [int(t) for t in self.rng.integers(self.catalogue // 5, self.catalogue, k)]

    def _human(self, kind: str) -> Plan:
        rng = self.rng
        wake = float(rng.uniform(6, 10))
        sleep = (wake + float(rng.uniform(14, 17))) % 24
        taste = [self.hit() for _ in range(int(rng.integers(40, 300)))]
        workout = [self.hit() for _ in range(20)]
        station = [self.hit() for _ in range(80)]
        gym_at = float(rng.uniform(wake + 1, wake + 12)) % 24
        skip_rate = float(rng.beta(2, 6))
        ts = self.start_ts + int(rng.integers(0, DAY))
        while ts < self.end():
            if kind == "gym-goer":
                ts = self.next_awake(ts, gym_at, (gym_at + 1.0) % 24)
                stop, order = ts + HOUR, workout
            elif kind == "background":
                ts = self.next_awake(ts, wake, (wake + 1) % 24)
                stop, order = ts + int(rng.uniform(10, 14) * HOUR), station
            elif kind == "insomniac":
                ts = self.next_awake(ts, float(rng.choice([1.0, 19.0])), 5.0)
                stop, order = ts + int(rng.uniform(0.5, 2.5) * HOUR), taste
            elif kind == "curator":
                ts = self.next_awake(ts, 10.0, 16.0)
                stop, order = ts + 10 * HOUR, []
            else:
                ts = self.next_awake(ts, wake, sleep)
                stop, order = ts + int(rng.uniform(0.3, 2.0) * HOUR), taste
            if kind == "chart-browser" and rng.random() < 0.5:
                for _ in range(int(rng.integers(20, 41))):
                    track, played = self.hit(), int(rng.integers(25_000, 50_000))
                    yield ts, track, "skip", played
                    ts += played + int(rng.integers(300, 3_000))
            elif kind == "curator":
                for _ in range(int(rng.integers(30, 61))):
                    (track,), played = self._new_releases(1), int(rng.integers(30_000, 45_000))
                    yield ts, track, "skip", played
                    ts += played + int(rng.integers(1_000, 8_000))
                ts = self.next_awake(ts + 14 * HOUR, 10.0, 16.0)
                continue
            k = int(rng.integers(0, len(order)))
            while ts < stop and ts < self.end():
                k = (k + 1) % len(order)
                track = order[k]
                if kind in ("gym-goer", "background"):
                    kind_, played = "play", int(self.length(track) * rng.uniform(0.9, 1.0))
                else:
                    kind_, played = self.listen(track, skip_rate, 20_000)
                yield ts, track, kind_, played
                if rng.random() < 0.02:
                    yield ts + played, track, "like", 0
                ts += played + int(rng.exponential(3_000))
            ts += int(rng.uniform(1, 8) * HOUR)

    def _blatant(self, targets: list[int]) -> Plan:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, HOUR))
        while ts < self.end():
            played = int(rng.integers(31_000, 34_000))
            yield ts, int(rng.choice(targets)), "play", played
            ts += played + int(rng.integers(300, 5_000))

    def _stuffer(self, loop: list[int]) -> Plan:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, HOUR))
        pos, rest = int(rng.integers(0, len(loop))), float(rng.uniform(0, 24))
        while ts < self.end():
            ts = self.next_awake(ts, (rest + 6) % 24, rest)
            pos = (pos + 1) % len(loop)
            played = int(self.length(loop[pos]) * rng.uniform(0.9, 1.0))
            yield ts, loop[pos], "play", played
            ts += played + int(rng.integers(500, 4_000))

    def _farmer(
        self,
        rotation: list[list[int]],
        *,
        per_day: tuple[float, float],
        awake_h: float,
        share: float,
        stop: tuple[int, int],
        full: float,
        pause: int = 0,
    ) -> Plan:
        """A farm account at human hours: ``share`` of its listens on the day's targets,
        ended ``stop`` ms in; the rest hits played through (``full`` of them at least)."""
        rng = self.rng
        wake = float(rng.uniform(7, 11))
        rate = float(rng.uniform(*per_day))
        ts = self.start_ts + int(rng.integers(0, DAY))
        while ts < self.end():
            ts = self.next_awake(ts, wake, (wake + awake_h) % 24)
            day = min(len(rotation) - 1, (ts - self.start_ts) // DAY)
            if rng.random() < share:
                track, played = int(rng.choice(rotation[day])), int(rng.integers(*stop))
            else:
                track = self.hit()
                played = int(self.length(track) * rng.uniform(full, 1.0))
            yield ts, track, "play", played
            ts += played + int(rng.exponential(awake_h * HOUR / rate)) + pause
