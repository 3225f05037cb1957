"""Logging the way mox logs: one ``l=info m="..." pkg=queue key=value`` line per event.

Every module logs through the standard :mod:`logging` package with a logger
named ``moxtrio.<pkg>``; this module only formats and configures. Key/value
attributes travel in ``extra=kv(...)``::

    log.info("delivery attempt", extra=kv(qid=5, to="a@example.org", code=250))

prints ``l=info m="delivery attempt" pkg=queue qid=5 to=a@example.org code=250``
(mox's logfmt output; values with spaces, quotes or ``=`` are quoted).

Levels are mox's: ``error warn info debug trace traceauth tracedata``. The
three trace levels are for protocol transcripts: at ``trace`` the lines of
an SMTP session are logged with passwords replaced by ``***`` and message
data by ``...``; ``traceauth`` shows the passwords and ``tracedata`` the data
as well, as in mox.

Third-party libraries (httpx, httpcore, hypercorn) log at warning and above
unless ``PackageLogLevels`` names them: their debug output is theirs to ask
for, not a side effect of ``LogLevel: traceauth``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

TRACE = 7
TRACEAUTH = 6
TRACEDATA = 5

#: mox's level names (its config accepts exactly these).
LEVELS: dict[str, int] = {
    "tracedata": TRACEDATA,
    "traceauth": TRACEAUTH,
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "print": logging.CRITICAL + 10,
}
_NAMES = {v: k for k, v in LEVELS.items()}
#: A JSON string literal, non-ASCII kept (``json.dumps(s, ensure_ascii=False)``
#: without building an encoder for every log line).
_quote = json.JSONEncoder(ensure_ascii=False).encode

#: mox's package names for the same parts, so a mox.conf's
#: ``PackageLogLevels`` works unchanged.
PACKAGE_ALIASES = {
    "smtpserver": "smtp",
    "smtpclient": "smtp.client",
    "webhook": "webhooks",
}

#: Libraries whose logging stays at warning unless configured by name.
THIRD_PARTY = ("httpx", "httpcore", "hypercorn", "hpack", "h11", "h2", "quart", "asyncio", "trio")

_ATTRS = "mox_attrs"

for _level, _name in ((TRACE, "TRACE"), (TRACEAUTH, "TRACEAUTH"), (TRACEDATA, "TRACEDATA")):
    logging.addLevelName(_level, _name)


def kv(**attrs: Any) -> dict[str, Any]:
    """``extra=`` argument carrying key/value attributes for one log line."""
    return {_ATTRS: attrs}


@functools.cache
def level_name(level: int) -> str:
    """mox's name for a stdlib level number (the nearest one at or below it; once per level)."""
    best = "tracedata"
    for value, name in sorted(_NAMES.items()):
        if value <= level:
            best = name
    return best


def parse_level(name: str) -> int:
    """A mox level name to a stdlib level; ValueError names the valid ones."""
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        valid = ", ".join(n for n in LEVELS if n not in ("fatal", "print"))
        raise ValueError(f'unknown log level "{name}" (valid: {valid})') from None


#: A character that makes a value quoted: space and controls, ``"``, ``\\``, ``=``, DEL and beyond.
#: Written as the complement of the printable ASCII that stays bare: a class
#: spelled as a range up to U+10FFFF took 3.5 ms to compile at start-up.
_QUOTED_CHAR = re.compile(r'[^\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]')


def _needs_quotes(s: str) -> bool:
    return s == "" or _QUOTED_CHAR.search(s) is not None


def format_value(value: Any) -> str:
    """A value as mox writes it: bare when it can be, quoted otherwise."""
    if value is None:
        s = ""
    elif isinstance(value, bool):
        s = "true" if value else "false"
    elif isinstance(value, float):
        s = f"{value:.6g}"
    elif isinstance(value, list | tuple):
        s = "[" + ",".join(str(v) for v in value) + "]"
    else:
        s = str(value)
    return _quote(s) if _needs_quotes(s) else s


def package(logger_name: str) -> str:
    """``moxtrio.queue.deliver`` -> ``queue.deliver``; others keep their name."""
    if logger_name == "moxtrio":
        return "mox"
    return logger_name.removeprefix("moxtrio.")


class MoxFormatter(logging.Formatter):
    """``l=LEVEL m="message" [err=...] pkg=PKG key=value ...`` on one line.

    An exception (``log.exception``/``exc_info``) becomes ``err=`` plus a
    ``stack=`` attribute holding the traceback, escaped onto the same line so
    that one event stays one line for log processors.
    """

    def __init__(self, timestamps: bool = False) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.timestamps:
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            parts.append(f"t={t}.{int(record.msecs):03d}")
        parts.append(f"l={level_name(record.levelno)}")
        parts.append("m=" + _quote(record.getMessage()))
        attrs: Mapping[str, Any] = getattr(record, _ATTRS, None) or {}
        if "err" in attrs:
            parts.append("err=" + format_value(attrs["err"]))
        elif record.exc_info and record.exc_info[1] is not None:
            parts.append("err=" + format_value(_describe(record.exc_info[1])))
        parts.append("pkg=" + format_value(package(record.name)))
        for key, value in attrs.items():
            if key != "err":
                parts.append(f"{key}={format_value(value)}")
        if record.exc_info and record.exc_info[1] is not None:
            stack = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            parts.append("stack=" + _quote(stack))
        return " ".join(parts)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def logger_for(pkg: str) -> str:
    """The logger name a ``PackageLogLevels`` key configures."""
    pkg = PACKAGE_ALIASES.get(pkg, pkg)
    root = pkg.split(".", 1)[0]
    if root in THIRD_PARTY:
        return pkg
    return f"moxtrio.{pkg}"


def configure(
    level: str | int = "info",
    package_levels: Mapping[str, str] | None = None,
    *,
    stream: Any = None,
    timestamps: bool = False,
) -> None:
    """Install the mox-style handler on the root logger and set levels.

    ``level`` is mox.conf's ``LogLevel`` (or ``-loglevel``); ``package_levels``
    its ``PackageLogLevels``. Unknown level names raise ValueError (the config
    check reports them before start-up).
    """
    base = parse_level(level) if isinstance(level, str) else level
    # The mox-style line names no source file, thread or process: not
    # collecting them saves a stack walk per record, which counts when every
    # SMTP line is traced (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(MoxFormatter(timestamps=timestamps))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Anything that is not ours (and not configured by name) says only what
    # went wrong.
    root.setLevel(logging.WARNING)
    logging.getLogger("moxtrio").setLevel(base)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pkg, lvl in (package_levels or {}).items():
        logging.getLogger(logger_for(pkg)).setLevel(parse_level(lvl))


def trace(logger: logging.Logger, level: int, prefix: str, data: bytes | str) -> None:
    """Log one piece of a protocol transcript, redacted as mox does.

    ``level`` is the sensitivity of ``data``: TRACE for commands and replies,
    TRACEAUTH for credentials, TRACEDATA for message data. The line is
    written at TRACE when the logger traces at all; credentials show as
    ``***`` unless the logger is at traceauth, data as ``...`` (with its size)
    unless at tracedata.
    """
    effective = logger.getEffectiveLevel()
    if effective > TRACE:
        return
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    attrs: dict[str, Any] = {}
    if level == TRACEDATA and effective > TRACEDATA:
        msg = prefix + "..."
        attrs["size"] = len(data)
    elif level == TRACEAUTH and effective > TRACEAUTH:
        msg = prefix + "***"
    else:
        msg = prefix + text
        if level == TRACEDATA:
            attrs["size"] = len(data)
    logger.log(TRACE, "%s", msg, extra=kv(**attrs))
