"""``python -m workers redrive`` as an operator runs it, on dead letters a real worker
wrote: the chosen ones published again with their original bytes, key and headers, each
once, whatever the number of runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.helpers import event_body
from tests.integration.conftest import TENANTS
from workers.core.records import AUDIO_CHUNKS, DEADLETTER, LISTENING_EVENTS
from workers.dev.client import Collector, audio_headers, start_producer
from workers.dev.stack import Stack
from workers.dev.testing import WorkerProcess
from workers.runtime.admin import create_topics

CHECK = "redrive.check"  # where the copies go here (--to), to be read back


def redrive(stack: Stack, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "workers", "redrive", *args],
        env={**os.environ, **stack.env(), "WORKERS_TENANTS": TENANTS},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


async def test_dead_letters_are_redriven_with_their_headers_once(
    worker: WorkerProcess, stack: Stack, tmp_path: Path
) -> None:
    await create_topics(stack.broker.bootstrap, [CHECK], partitions=1)
    collector = await Collector(stack.broker.bootstrap, [DEADLETTER, CHECK]).start()
    producer = await start_producer(stack.broker.bootstrap)
    try:
        # three chunks of a tenant this fleet does not serve yet, one bad event of a served one
        sent = []
        for seq in range(3):
            headers = audio_headers(
                tenant="newco", stream="rd-s", seq=seq, sample_rate=16000, channels=1
            )
            value = bytes([seq]) * 64
            await producer.send(AUDIO_CHUNKS, value, key=b"newco/rd-s", headers=headers)
            sent.append((value, headers))
        body = orjson.dumps({**event_body("acme", "rd-u", "rd-e"), "type": "buy"})
        await producer.send(LISTENING_EVENTS, body, key=b"acme/rd-u")
        await producer.flush()
        letters = await collector.wait_for(
            lambda r: r.topic == DEADLETTER and (r.key or b"").endswith((b"/rd-s", b"/rd-u")), 4
        )
        assert sorted(r.header("error") or "" for r in letters) == [
            "schema-invalid",
            *["unknown-tenant"] * 3,
        ]

        code, out = redrive(stack, "--reason", "unknown-tenant", "--tenant", "newco", "--dry-run")
        assert code == 0, out
        assert "would re-drive 3," in out
        assert not collector.matching(lambda r: r.topic == CHECK)

        code, out = redrive(stack, "--reason", "unknown-tenant", "--tenant", "newco", "--to", CHECK)
        assert code == 0, out
        assert "re-drove 3, 0 already" in out
        copies = await collector.wait_for(lambda r: r.topic == CHECK, 3)
        assert sorted((c.value, c.key) for c in copies) == sorted(
            (value, b"newco/rd-s") for value, _ in sent
        )
        for copy in copies:
            original = next(h for v, h in sent if v == copy.value)
            kept = [(n, v) for n, v in copy.headers if n != "redriven-from"]
            assert kept == original, "the original headers, restored in order"
            assert (copy.header("redriven-from") or "").startswith(f"{DEADLETTER}:")

        # again: nothing twice; the other reason was never chosen
        code, out = redrive(stack, "--reason", "unknown-tenant", "--tenant", "newco", "--to", CHECK)
        assert code == 0, out
        assert "re-drove 0, 3 already" in out
        code, out = redrive(stack, "--reason", "unknown-tenant", "--tenant", "acme", "--to", CHECK)
        assert "matched; re-drove 0," in out
        assert len(collector.matching(lambda r: r.topic == CHECK)) == 3
    finally:
        await collector.stop()
        await producer.stop()
