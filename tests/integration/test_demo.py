"""``make demo``, the main job, as a user runs it: a summary with the worker beside the floor."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_the_demo_accounts_for_every_input_and_shows_the_floor() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workers", "demo", "--seconds", "6", "--history", "500"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "160"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    accounted = re.search(r"inputs accounted for\s*│\s*(\d+) / (\d+)", out)
    assert accounted is not None, out[-3000:]
    assert accounted.group(1) == accounted.group(2)  # each input: its outputs or a dead letter
    for kind in ("audio", "listening"):
        for path in ("floor", "worker", "in worker"):
            row = re.search(rf"{kind} · {path}\s*│\s*([\d.]+)\s*│\s*([\d.]+)", out)
            assert row is not None, (kind, path, out[-3000:])
    assert "own share at" in " ".join(out.split())
    # the catalogue deliveries: told apart by the tagger, the decoder's one flagged alone
    rows = {m.group(1): m.group(0) for m in re.finditer(r"│ \w+/(delivery-[a-z]+) .*", out)}
    assert len(rows) == 6, out[-5000:]
    assert "FLAGGED" in rows.pop("delivery-genai")
    assert all("│ no (" in row for row in rows.values()), rows
    assert "9 requests sent after the load, 9 answers read" in out
    assert "worker stopped gracefully (exit 0)" in out
