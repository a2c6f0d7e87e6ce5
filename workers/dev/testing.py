"""Run a real worker process (``python -m workers run``) for tests, demo and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from workers.dev.stack import free_port

__all__ = ["WorkerProcess", "metric_value"]


class WorkerProcess:
    def __init__(
        self,
        env: dict[str, str],
        *,
        log: Path,
        metrics_port: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        """``args``: more arguments to ``run`` (``["--processes", "2"]``: the children's
        metrics ports follow ``metrics_port``)."""
        self.args = list(args)
        self.metrics_port = metrics_port or free_port()
        self.env = {**os.environ, **env, "WORKERS_METRICS_PORT": str(self.metrics_port)}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers", "run", *self.args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url(path), timeout=1) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=2) as response:
            return str(response.read().decode())

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until /ready answered 200; raises if the process died or time ran out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log}")
            if self.status("/ready") == 200:
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout:.0f} s; see {self.log}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful stop."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL to the worker and whatever it started (``--processes``: its children)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, label_text = metric.partition("{")
        if base != name:
            continue
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if got == wanted:
            total += float(value)
    return total
