"""The second held-out listening population, ``RadioPopulation`` (described with the first in
``holdout``): listening by stations, with farms spread thin, listening parties and stuffers
on a 24 h station, beside office workers, looping children, previewing DJs and shift
workers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from workers.dev.holdout import DAY, HOUR, _Held, _Party

__all__ = ["RadioPopulation"]


@dataclass
class RadioPopulation(_Held):
    people: int = 1200
    catalogue: int = 12_000

    def populate(self) -> None:
        rng = self.rng
        self._stations = [[self.hit() for _ in range(60)] for _ in range(80)]
        for i in range(self.people):
            roll = rng.random()
            kind = (
                "office-worker" if roll < 0.06
                else "child-looper" if roll < 0.09
                else "dj" if roll < 0.12
                else "shift-worker" if roll < 0.17
                else "person"
            )  # fmt: skip
            self.add(f"r{self.seed}.{i}", kind, False, self._listener(kind))
        loop_tracks = list(rng.choice(self.catalogue, 5, replace=False))
        spread_targets = list(rng.choice(self.catalogue, 50, replace=False))
        party_targets = list(rng.choice(self.catalogue, 8, replace=False))
        station_targets = list(rng.choice(self.catalogue, 6, replace=False))
        self._pushed |= {int(t) for t in (*loop_tracks, *spread_targets, *party_targets)}
        self._pushed |= {int(t) for t in station_targets}
        for i in range(5):
            self.add(
                f"rb.{self.seed}.{i}", "blatant", True, self._loop(int(loop_tracks[i])), "blatant"
            )
        for i in range(100):
            self.add(
                f"rs.{self.seed}.{i}",
                "spread-farm",
                True,
                self._spread(spread_targets),
                "spread-farm",
            )
        party = _Party(self, party_targets, members=20)
        for i in range(20):
            self.add(f"rp.{self.seed}.{i}", "party-farm", True, party.member(i), "party-farm")
        station = [self.hit() for _ in range(54)] + [int(t) for t in station_targets]
        rng.shuffle(station)
        for i in range(12):
            stuffing = self._station(station)
            self.add(f"rt.{self.seed}.{i}", "station-stuffer", True, stuffing, "station-stuffer")

    def _listener(self, kind: str) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        station = self._stations[int(rng.integers(0, len(self._stations)))]
        favourite = self.hit()
        ts = self.start_ts + int(rng.integers(0, DAY))
        skip_rate = float(rng.beta(2, 7))
        while ts < self.end():
            if kind == "office-worker":
                ts = self.next_awake(ts, 9.0, 17.0)
            elif kind == "shift-worker":
                ts = self.next_awake(ts, 21.0, 7.0)
            elif kind == "dj":
                ts = self.next_awake(ts, 18.0, 23.0)
            else:  # commute and evening
                ts = self.next_awake(ts, float(rng.choice([7.5, 17.5, 20.0])), 23.0)
            length = {"office-worker": 8 * HOUR, "dj": 2 * HOUR}.get(
                kind, int(rng.uniform(0.3, 1.5) * HOUR)
            )
            stop = ts + length
            if rng.random() < 0.1:
                station = self._stations[int(rng.integers(0, len(self._stations)))]
            order = list(rng.permutation(len(station)))
            k = 0
            while ts < stop and ts < self.end():
                if kind == "child-looper" and rng.random() < 0.7:
                    track, kind_, played = favourite, "play", self.length(favourite)
                elif kind == "dj":
                    track = self.hit()
                    kind_, played = "skip", int(rng.integers(28_000, 46_000))
                else:
                    track = station[order[k % len(order)]]
                    k += 1
                    kind_, played = self.listen(track, skip_rate, 12_000)
                yield ts, track, kind_, played
                ts += played + int(rng.integers(500, 5_000))
            ts += int(rng.uniform(2, 10) * HOUR)

    def _loop(self, track: int) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, HOUR))
        while ts < self.end():
            yield ts, track, "play", 31_000
            ts += 31_000 + int(rng.integers(200, 2_500))

    def _spread(self, targets: list[int]) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, DAY))
        while ts < self.end():
            ts = self.next_awake(ts, 8.0, 22.0)
            if rng.random() < 0.7:
                track = int(rng.choice(targets))
                played = int(rng.integers(30_000, 62_000))
            else:
                track = self.hit()
                played = int(self.length(track) * rng.uniform(0.5, 1.0))
            yield ts, track, "play", played
            ts += played + int(rng.exponential(DAY / 5))

    def _station(self, station: list[int]) -> Iterator[tuple[int, int, str, int]]:
        rng = self.rng
        ts = self.start_ts + int(rng.integers(0, HOUR))
        order = list(rng.permutation(len(station)))
        k = 0
        while ts < self.end():
            track = station[order[k % len(order)]]
            k += 1
            played = int(self.length(track) * rng.uniform(0.9, 1.0))
            yield ts, track, "play", played
            ts += played + int(rng.integers(200, 3_000))
