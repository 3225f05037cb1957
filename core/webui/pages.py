"""Server-rendered pages of the web interfaces: one Jinja2 environment per interface.

An interface's templates extend ``base.html`` (layout, navigation, the login
form shown to a visitor without a session, the message area). Templates get
mox's JSON shapes from the API functions, so a page shows exactly what the
API returns; the filters here only format (times in UTC with "ago"/"in",
Go durations in nanoseconds, pretty-printed JSON).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import trio
from quart import Blueprint, Response

from core.gofmt import parse_rfc3339

HERE = Path(__file__).parent
STATIC = HERE / "static"


def _time(value: Any) -> str:
    if not value:
        return ""
    try:
        t = parse_rfc3339(str(value))
    except ValueError:
        return str(value)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _relative(value: Any, now: datetime | None = None) -> str:
    """"in 5m" or "3h02m ago" for an RFC 3339 time."""
    if not value:
        return ""
    try:
        t = parse_rfc3339(str(value))
    except ValueError:
        return ""
    delta = (t - (now or datetime.now(UTC))).total_seconds()
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(delta)} ago"


def _duration(ns: Any) -> str:
    """A Go duration in nanoseconds, shortly (ms below a second)."""
    n = int(ns or 0)
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.0f}ms"
    return f"{n / 1_000_000_000:.1f}s"


def _pretty(value: Any) -> str:
    """JSON text (a webhook payload) indented; other text unchanged."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)


class Pages:
    """Renders one interface's templates (its own directory, then the shared one)."""

    def __init__(self, template_dir: Path, *, kind: str, title: str, base: str,
                 nav: Sequence[tuple[str, str]]) -> None:
        self.kind = kind
        self.title = title
        self.base = base
        self.nav = list(nav)
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(str(template_dir)), jinja2.FileSystemLoader(str(HERE / "templates"))]
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(time=_time, ago=_relative, duration=_duration, pretty=_pretty)
        self.env.globals["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)

    def render(self, template: str, session: Any, *, active: str = "", title: str = "",
               status: int = 200, **values: Any) -> Response:
        """A page, or the login form in its place when there is no session."""
        who = ""
        if session is not None:
            who = session.login_address or "admin"
        html = self.env.get_template(template if session is not None else "base.html").render(
            kind=self.kind, iface_title=self.title, base=self.base, nav=self.nav, active=active,
            session=session, who=who, title=title or "Log in", **values,
        )
        return Response(html, status=status, headers={"Content-Type": "text/html; charset=utf-8",
                                                      "Cache-Control": "no-store"})


def add_static(bp: Blueprint) -> None:
    """Serve the shared stylesheet, script and icon at ``static/<name>``."""
    names = ("ui.css", "ui.js", "favicon.svg")
    cache: dict[str, bytes] = {}

    async def static(name: str) -> Response:
        if name not in names:
            return Response("404 page not found\n", status=404, headers={"Content-Type": "text/plain"})
        data = cache.get(name)
        if data is None:
            data = cache[name] = await trio.Path(STATIC / name).read_bytes()
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return Response(data, headers={"Content-Type": ctype, "Cache-Control": "max-age=300"})

    bp.add_url_rule("/static/<name>", view_func=static, methods=["GET"], endpoint="static_file")
