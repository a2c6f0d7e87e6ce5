"""`produce` and `tail` as a user runs them: subprocesses against the embedded stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import soundfile

from tests.helpers import TS
from workers.core.records import ANOMALY, AUDIO_FEATURES, POPULARITY
from workers.dev.client import Collector
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess


def workers_cli(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env()}
    return subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def keyed(prefix: str, topic: str):
    return lambda r: r.topic == topic and (r.key or b"").startswith(prefix.encode())


async def test_produce_a_flac_file_as_a_real_time_stream(
    worker: WorkerProcess, stack: Stack, collector: Collector, tmp_path: Path
) -> None:
    sr = 44100
    t = np.arange(int(2.0 * sr)) / sr
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], 1)
    path = tmp_path / "take.flac"
    soundfile.write(path, stereo, sr)
    done = workers_cli(
        stack,
        "produce",
        "audio",
        str(path),
        "--tenant",
        "acme",
        "--stream",
        "flac-1",
        "--track",
        "t9",
    )
    assert "published 4 chunks" in done.stdout
    features = await collector.wait_for(keyed("acme/flac-1", AUDIO_FEATURES), 4)
    assert [m.json()["seq"] for m in features] == [0, 1, 2, 3]
    assert all(m.json()["track"] == "t9" for m in features)
    assert not any(m.json()["quality"]["seq_gap"] for m in features)


async def test_replay_jsonl_and_csv_listening_events(
    worker: WorkerProcess, stack: Stack, collector: Collector, tmp_path: Path
) -> None:
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(
        "\n".join(
            orjson.dumps(
                {
                    "event_id": f"r-j{i}",
                    "user_id": "replay-u1",
                    "track_id": "replay-t",
                    "type": "play",
                    "ts": TS + i * 1000,
                    "ms_played": 120_000,
                }
            ).decode()
            for i in range(5)
        )
        + "\n"
    )
    csv = tmp_path / "events.csv"
    csv.write_text(
        "event_id,user_id,track_id,type,ts,ms_played\n"
        + "".join(f"r-c{i},replay-u2,replay-t,skip,{TS + i * 1000},4000\n" for i in range(3))
    )
    assert (
        "published 5"
        in workers_cli(stack, "produce", "events", str(jsonl), "--tenant", "acme").stdout
    )
    assert (
        "published 3"
        in workers_cli(
            stack, "produce", "events", str(csv), "--tenant", "acme", "--rate", "50"
        ).stdout
    )
    scores = await collector.wait_for(
        lambda r: r.topic == ANOMALY and str(r.json()["ref"]).startswith("r-"), 8
    )
    assert sorted(str(m.json()["ref"]) for m in scores) == sorted(
        [f"r-j{i}" for i in range(5)] + [f"r-c{i}" for i in range(3)]
    )
    popularity = await collector.wait_for(keyed("acme/replay-t", POPULARITY), 8)
    assert max(m.json()["plays"] for m in popularity) == 5  # the CSV rows were skips


def test_tail_shows_a_topic_as_readable_rows(worker: WorkerProcess, stack: Stack) -> None:
    done = workers_cli(
        stack,
        "tail",
        "predictions.anomaly",
        "--from-beginning",
        "--plain",
        "--limit",
        "5",
        "--tenant",
        "acme",
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 5
    assert all(line.startswith("acme | ") for line in lines)
    assert any(" | listening | " in line or " | audio | " in line for line in lines)
