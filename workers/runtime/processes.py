"""``python -m workers run --processes N``: N worker processes in one consumer group, so a
host's cores are used (a worker process is one event loop: one core).

The parent only supervises: it starts ``python -m workers run`` N times, each with its own
metrics port (``WORKERS_METRICS_PORT`` + i) and, when static membership is on, its own
``WORKERS_GROUP_INSTANCE_ID`` (suffixed ``-i``); it passes SIGTERM and SIGINT on, waits for
every child to drain, and starts again a child that dies on its own (after 1 s, then up to
30 s between attempts if it keeps dying). Each child is the same worker as a lone one: the
group spreads the partitions over them, and the state they share is in Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["Supervisor", "child_environments"]

log = logging.getLogger(__name__)

RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0


def child_environments(environ: Mapping[str, str], processes: int) -> list[dict[str, str]]:
    """The environment of each child: its metrics port, and its static member id if any.

    >>> envs = child_environments({"WORKERS_METRICS_PORT": "9108"}, 3)
    >>> [e["WORKERS_METRICS_PORT"] for e in envs]
    ['9108', '9109', '9110']
    """
    base = int(environ.get("WORKERS_METRICS_PORT", "9108"))
    instance = environ.get("WORKERS_GROUP_INSTANCE_ID")
    children = []
    for i in range(processes):
        env = {**environ, "WORKERS_METRICS_PORT": str(base + i)}
        if instance:
            env["WORKERS_GROUP_INSTANCE_ID"] = f"{instance}-{i}"
        children.append(env)
    return children


@dataclass
class _Child:
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0


@dataclass
class Supervisor:
    processes: int
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _children: list[_Child] = field(default_factory=list)
    _stopping: bool = False

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(  # the child inherits stdout/stderr: one log
            [sys.executable, "-m", "workers", "run"], env=child.env
        )

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        for child in self._children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signum)

    def run(self) -> int:
        self._children = [_Child(env) for env in child_environments(self.environ, self.processes)]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        for child in self._children:
            self._start(child)
        log.info("supervising %d worker processes", self.processes)
        while True:
            alive = 0
            for i, child in enumerate(self._children):
                process = child.process
                if process is not None and process.poll() is None:
                    alive += 1
                    continue
                if self._stopping:
                    continue
                now = time.monotonic()
                if process is not None:  # it died on its own: start it again, later
                    log.error("worker process %d exited with %s", i, process.returncode)
                    child.restarts += 1
                    delay = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (child.restarts - 1))
                    child.next_start, child.process = now + delay, None
                if now >= child.next_start:
                    self._start(child)
                    alive += 1
            if self._stopping and not alive:
                return 0
            time.sleep(0.2)
