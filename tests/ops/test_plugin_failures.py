"""A plugin that raises in a hook: one error line with its traceback per
distinct failure, repeats rate limited."""

from __future__ import annotations

import io
import logging

import pytest

from core import mlog
from core.dispatch import HookFailed
from core.hookspecs import hookimpl
from tests.core.test_dispatch import make, submission


class Broken:
    @hookimpl
    def moxtrio_submission(self, submission: object) -> None:
        raise RuntimeError("plugin bug here")


@pytest.fixture
def log_text() -> io.StringIO:
    buf = io.StringIO()
    mlog.configure("info", stream=buf)
    yield buf
    mlog.configure("info")


async def test_verdict_failure_logs_traceback_once(log_text: io.StringIO) -> None:
    hooks = make(Broken())
    for _ in range(5):
        with pytest.raises(HookFailed):
            await hooks.first("moxtrio_submission", ctx=None, submission=submission())
    lines = [ln for ln in log_text.getvalue().splitlines() if "plugin hook failed" in ln]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith('l=error m="plugin hook failed" err="plugin bug here" pkg=hooks plugin=p0')
    assert "hook=moxtrio_submission" in line
    assert 'stack="Traceback (most recent call last):' in line and "RuntimeError: plugin bug here" in line
    assert "in moxtrio_submission" in line


async def test_a_different_failure_is_reported_again(log_text: io.StringIO) -> None:
    class Other:
        @hookimpl
        def moxtrio_submission(self, submission: object) -> None:
            raise ValueError("another bug")

    for plugin in (Broken(), Other()):
        hooks = make(plugin)
        with pytest.raises(HookFailed):
            await hooks.first("moxtrio_submission", ctx=None, submission=submission())
    errors = [ln for ln in log_text.getvalue().splitlines() if ln.startswith("l=error")]
    assert len(errors) == 2 and "another bug" in errors[1]


def test_log_format_quotes_like_mox() -> None:
    rec = logging.LogRecord("moxtrio.queue", logging.INFO, "", 0, "delivered", None, None)
    rec.mox_attrs = {"qid": 5, "to": "a b@x", "ok": True, "empty": ""}  # type: ignore[attr-defined]
    assert mlog.MoxFormatter().format(rec) == 'l=info m="delivered" pkg=queue qid=5 to="a b@x" ok=true empty=""'
