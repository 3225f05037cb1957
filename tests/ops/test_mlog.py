"""Transcript redaction per level, as mox's mlog does it."""

from __future__ import annotations

import io
import logging

from core import mlog
from core.smtp.observe import trace_read


def _lines(level: str) -> list[str]:
    buf = io.StringIO()
    mlog.configure(level, stream=buf)
    try:
        log = logging.getLogger("moxtrio.smtp")
        trace_read(log, b"AUTH PLAIN AG1veABzZWNyZXQ=", auth=False)
        trace_read(log, b"c2VjcmV0", auth=True)
        mlog.trace(log, mlog.TRACEDATA, "RD: ", b"Subject: hi\r\n\r\nbody\r\n")
    finally:
        mlog.configure("info")
    return buf.getvalue().splitlines()


def test_trace_hides_credentials_and_data() -> None:
    assert _lines("trace") == [
        'l=trace m="RC: AUTH PLAIN ***" pkg=smtp',
        'l=trace m="RC: ***" pkg=smtp',
        'l=trace m="RD: ..." pkg=smtp size=21',
    ]


def test_traceauth_shows_credentials_tracedata_shows_data() -> None:
    auth = _lines("traceauth")
    assert auth[0] == 'l=trace m="RC: AUTH PLAIN AG1veABzZWNyZXQ=" pkg=smtp'
    assert auth[2] == 'l=trace m="RD: ..." pkg=smtp size=21'
    data = _lines("tracedata")
    assert data[2] == 'l=trace m="RD: Subject: hi\\r\\n\\r\\nbody\\r\\n" pkg=smtp size=21'


def test_debug_logs_no_transcript() -> None:
    assert _lines("debug") == []


def test_values_quoted_exactly_when_mox_quotes_them() -> None:
    """Bare: printable ASCII except ``"``, ``=`` and ``\\``; anything else (space, controls, DEL, non-ASCII) quotes."""
    bare = [chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"=\\']
    quoted = [chr(c) for c in range(0x21)] + ['"', "=", "\\", "\x7f", "\x80", "é", "\u2028", "\U0001f600", "\U0010ffff"]
    assert len(bare) == 91
    for ch in bare:
        assert mlog.format_value(f"a{ch}b") == f"a{ch}b", repr(ch)
    for ch in quoted:
        assert mlog.format_value(f"a{ch}b").startswith('"'), repr(ch)
    assert mlog.format_value("") == '""'
