"""Lanes: each input topic on its own, in order, batches as large as the backlog."""

from __future__ import annotations

import asyncio

from workers.core.records import AUDIO_CHUNKS, LISTENING_EVENTS, Record
from workers.runtime.lanes import Lane, Lanes


def record(topic: str, offset: int, partition: int = 0) -> Record:
    return Record(topic, partition, offset, None, None)


async def test_a_slow_lane_does_not_hold_the_other_one_up() -> None:
    finished: list[str] = []
    release, events_done, audio_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow(records: list[Record]) -> None:
        await release.wait()  # the chunk stays in hand until the test lets it go
        finished.append("audio")
        audio_done.set()

    async def quick(records: list[Record]) -> None:
        finished.append("events")
        events_done.set()

    lanes = Lanes(
        {
            AUDIO_CHUNKS: Lane(AUDIO_CHUNKS, slow, batch_max=10),
            LISTENING_EVENTS: Lane(LISTENING_EVENTS, quick, batch_max=10),
        }
    )
    lanes.start()
    lanes.put([record(AUDIO_CHUNKS, 0), record(LISTENING_EVENTS, 0)])
    await asyncio.wait_for(events_done.wait(), 5)  # the event did not wait for the chunk
    assert finished == ["events"]
    release.set()
    await asyncio.wait_for(audio_done.wait(), 5)
    await lanes.stop()
    assert finished == ["events", "audio"]


async def test_records_keep_their_order_and_batches_follow_the_backlog() -> None:
    batches: list[list[int]] = []
    first_in_hand, release, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def process(records: list[Record]) -> None:
        batches.append([r.offset for r in records])
        if len(batches) == 1:
            first_in_hand.set()
            await release.wait()
        if sum(map(len, batches)) == 7:
            all_done.set()

    lane = Lane(LISTENING_EVENTS, process, batch_max=4)
    lane.start()
    lane.put([record(LISTENING_EVENTS, 0)])
    await asyncio.wait_for(first_in_hand.wait(), 5)  # alone: processed at once, a batch of one
    lane.put(record(LISTENING_EVENTS, i) for i in range(1, 7))  # a backlog behind it
    release.set()
    await asyncio.wait_for(all_done.wait(), 5)
    await lane.stop()
    assert batches == [[0], [1, 2, 3, 4], [5, 6]]


async def test_a_backlog_past_the_high_mark_asks_to_stop_fetching() -> None:
    gate, in_hand = asyncio.Event(), asyncio.Event()

    async def blocked(records: list[Record]) -> None:
        in_hand.set()
        await gate.wait()

    lanes = Lanes({LISTENING_EVENTS: Lane(LISTENING_EVENTS, blocked, batch_max=2)})
    lanes.start()
    lanes.put(record(LISTENING_EVENTS, i) for i in range(8))
    await asyncio.wait_for(in_hand.wait(), 5)  # the first two are in hand, six wait
    assert lanes.backlogged() == {LISTENING_EVENTS}
    assert lanes.drop(lambda r: r.offset >= 4) == 4  # a revoked partition's, say
    assert lanes.drained() == {LISTENING_EVENTS}
    gate.set()
    async with lanes.held():  # the batch in hand done, nothing else starts
        assert len(lanes.lanes[LISTENING_EVENTS].queue) in (0, 2)
    await lanes.stop()


async def test_a_failing_batch_stops_its_lane_and_says_so() -> None:
    errors: list[BaseException] = []
    said = asyncio.Event()

    async def broken(records: list[Record]) -> None:
        raise RuntimeError("boom")

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)
        said.set()

    lane = Lane(LISTENING_EVENTS, broken, batch_max=2, on_error=on_error)
    lane.start()
    lane.put([record(LISTENING_EVENTS, 0)])
    await asyncio.wait_for(said.wait(), 5)
    await lane.stop()
    assert [str(e) for e in errors] == ["boom"]
