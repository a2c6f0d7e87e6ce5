"""The operator's commands besides ``run``: ``check`` and ``config`` before it, ``erase``
and ``redrive`` beside it. Each reads the worker's own settings from the environment,
says what it did and what it could not, and exits non-zero when anything is wrong."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["check", "config", "erase", "masked_url", "redrive", "settings_or_refusal", "when_ms"]


def erase(args: argparse.Namespace) -> int:
    import asyncio

    from workers.runtime.erasing import erase_everywhere

    settings = settings_or_refusal("erase")
    if settings is None:
        return 2
    if args.user is None and not args.all_of_tenant:
        print("erase: name a listener (--user U), or the whole tenant with --all-of-tenant")
        return 2
    if settings.audit_key is None:
        print("erase: WORKERS_AUDIT_KEY must be set (the key of the audit trail's digests)")
        return 2
    audit_key = settings.audit_key.get_secret_value().encode()

    async def run() -> int:
        report = await erase_everywhere(
            settings,
            tenant=args.tenant,
            user_id=args.user,
            whole_tenant=args.all_of_tenant,
            audit_key=audit_key,
            requested_by=args.by,
            reason=args.reason,
            tombstone=not args.no_tombstone,
        )
        done = report.erasure
        scope = (
            f"user {done.user_id} of tenant {done.tenant}"
            if done.user_id
            else f"tenant {done.tenant}"
        )
        print(f"erased {scope}: {done.keys_deleted} keys deleted; audit record {done.audit_id}")
        for what, expires_ms in done.remaining.items():
            when = (
                time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires_ms / 1000))
                if expires_ms
                else "outside Redis"
            )
            print(f"  remaining: {what} (expires {when})")
        for problem in report.problems:
            print(f"erase: NOT DONE: {problem}", file=sys.stderr)
        return 1 if report.problems else 0

    return asyncio.run(run())


def settings_or_refusal(verb: str) -> Any:
    """The settings from the environment, or None after saying what is wrong with them."""
    from pydantic import ValidationError

    from workers.runtime.settings import Settings

    try:
        return Settings()
    except ValidationError as invalid:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in invalid.errors()
        )
        print(f"{verb}: invalid settings: {problems}", file=sys.stderr)
        return None


def masked_url(url: str) -> str:
    """A URL with its password, if any, masked.

    >>> masked_url("rediss://fleet:s3cret@redis.internal:6380/0")
    'rediss://fleet:***@redis.internal:6380/0'
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.username else ":***"
    netloc = f"{user}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def config(args: argparse.Namespace) -> int:
    import json

    from workers.runtime.settings import Settings

    if args.schema:
        print(json.dumps(Settings.model_json_schema(), indent=2))
        return 0
    settings = settings_or_refusal("config")
    if settings is None:
        return 2
    values = settings.model_dump(mode="json")  # secrets come out as '**********'
    values["redis_url"] = masked_url(settings.redis_url.get_secret_value())
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
        return 0
    for name, value in sorted(values.items()):
        if isinstance(value, dict):
            for key, item in sorted(value.items()):
                print(f"WORKERS_{name.upper()}__{key.replace('.', '_').upper()}={item}")
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        print(f"WORKERS_{name.upper()}={'' if shown is None else shown}")
    return 0


def check(_: argparse.Namespace) -> int:
    import asyncio

    from workers.runtime.checking import check_all

    settings = settings_or_refusal("check")
    if settings is None:
        return 2
    checks = asyncio.run(check_all(settings))
    for check in checks:
        print(check)
    return 0 if all(check.ok for check in checks) else 1


def when_ms(text: str | None) -> int | None:
    """Epoch milliseconds from an ISO 8601 time (UTC unless it says otherwise) or a number
    of epoch milliseconds."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    from datetime import UTC, datetime

    when = datetime.fromisoformat(text)
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def redrive(args: argparse.Namespace) -> int:
    import asyncio

    from workers.runtime.redrive import RedriveReport, Wanted, redrive
    from workers.runtime.settings import Settings

    wanted = Wanted(
        reason=args.reason,
        tenant=args.tenant,
        since_ms=when_ms(args.since),
        until_ms=when_ms(args.until),
        to=args.to,
        dry_run=args.dry_run,
    )

    def progress(report: RedriveReport) -> None:
        print(
            f"  {report.scanned} read, {report.matched} matched, {report.redriven} re-driven",
            file=sys.stderr,
        )

    report = asyncio.run(redrive(Settings(), wanted, progress=progress))
    verb = "would re-drive" if wanted.dry_run else "re-drove"
    print(
        f"redrive {wanted.reason}: {report.scanned} dead letters read, {report.matched} "
        f"matched; {verb} {report.redriven}, {report.already} already re-driven, "
        f"{report.empty} without a value (erased listeners)"
    )
    for problem in report.problems:
        print(f"  problem: {problem}", file=sys.stderr)
    return 1 if report.problems else 0
