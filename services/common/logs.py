"""Structured logging: one JSON object per line, with the request id of the RPC being served.

Secrets never reach a log: requests and metadata are never logged whole, and a filter masks any field whose
name looks like a credential (password, token, secret, authorization) in the ``extra`` of a record.

Where lines go is chosen by :func:`configure_logging`: the whole stream to stderr (what a container runs), or,
for the interactive all-in-one, the whole stream to a rotated file and a calm console that shows only warnings,
errors and what is logged for the person at the terminal on :data:`CONSOLE` (progress, milestones).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from services.common.context import request_id_var

CONSOLE = "marquee.console"  # a logger for the person at the terminal: shown on the calm console, in the file too
LOG_FILE_BYTES = 20 * 1024 * 1024  # the log file rotates at this size...
LOG_FILE_BACKUPS = 5  # ...keeping this many old files (marquee.log.1 ... .5)

_SECRET_WORDS = ("password", "token", "secret", "authorization", "cookie", "key")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


class RedactingFilter(logging.Filter):
    """Masks credential-looking extra fields and stamps the request id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        for key in list(record.__dict__):
            if key not in _STANDARD and is_secret_field(key):
                record.__dict__[key] = "[redacted]"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class CalmFilter(logging.Filter):
    """What the calm console shows: warnings, errors, and the :data:`CONSOLE` logger's lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == CONSOLE or record.name.startswith(CONSOLE + ".")


class ConsoleFormatter(logging.Formatter):
    """The calm console's lines: console messages as they are, warnings and errors with their level and source."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno < logging.WARNING:
            return message
        source = record.name.removeprefix("marquee.")
        text = f"{record.levelname.lower()}: {source}: {message}"
        if record.exc_info:
            text += f" ({record.exc_info[1]!r}; the traceback is in the log file)"
        return text


def _text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def configure_logging(
    level: str = "INFO",
    fmt: str = "json",
    *,
    file: Path | None = None,
    console: Literal["all", "calm"] = "all",
) -> None:
    """Install the platform's handlers on the root logger (idempotent).

    ``console="all"`` streams every record at ``level`` to stderr in ``fmt`` (json or text). ``console="calm"``
    shows only :class:`CalmFilter`'s records there. ``file`` (JSON lines at ``level``, rotated) receives
    everything too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_marquee", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    stream = logging.StreamHandler(sys.stderr)
    if console == "calm":
        stream.addFilter(CalmFilter())
        stream.setFormatter(ConsoleFormatter())
    else:
        stream.setFormatter(JsonFormatter() if fmt == "json" else _text_formatter())
    handlers.append(stream)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        rotating.setFormatter(JsonFormatter())
        handlers.append(rotating)
    for handler in handlers:
        handler._marquee = True  # type: ignore[attr-defined]
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # the console logger's lines are for people: never hidden by a WARNING-level configuration
    logging.getLogger(CONSOLE).setLevel(logging.INFO)
