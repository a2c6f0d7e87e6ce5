"""The worker's log lines: text for a terminal, or one JSON object per line
(``WORKERS_LOG_FORMAT=json``) for a log pipeline, with the record's place where a log
call gives it (``extra={"tenant": ..., "topic": ..., "partition": ..., "offset": ...}``).

>>> import logging
>>> line = JsonFormatter().format(logging.LogRecord(
...     "workers.x", logging.WARNING, __file__, 1, "stopped at offset %d", (7,), None))
>>> import json; {k: v for k, v in json.loads(line).items() if k != "time"}
{'level': 'warning', 'logger': 'workers.x', 'message': 'stopped at offset 7'}
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

__all__ = ["PLACE_FIELDS", "TEXT_FORMAT", "JsonFormatter", "logging_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: a record's place, when the log call names it
PLACE_FIELDS = ("tenant", "topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601, ms), level, logger, message, the
    record's place where known, and the exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in PLACE_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """``logging.config.dictConfig`` for ``json`` lines on stderr; None for text (the
    engines' own colourful handler)."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["json"]},
    }
