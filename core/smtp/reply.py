"""SMTP replies as mox writes them: ``<code> <enhanced> <text> (<conn-id>)``.

mox appends the connection's opaque id to error replies so a user reporting a
failure gives the admin something to grep the logs for; we do the same, with
the same shape (22 base64url characters from 16 random bytes). Replies with
newlines become multi-line replies; over-long lines are wrapped like mox does
(RFC 5321 limits a reply line to 512 octets including CRLF).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

MAX_REPLY_LINE = 510  # Excluding CRLF.


def new_conn_id() -> str:
    """A fresh per-connection id: 16 random bytes, base64url without padding (22 chars)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def _valid_enhanced(enhanced: str) -> bool:
    parts = enhanced.split(".")
    return (
        len(parts) == 3
        and all(p.isascii() and p.isdigit() for p in parts)
        and len(parts[0]) == 1
        and 1 <= len(parts[1]) <= 3
        and 1 <= len(parts[2]) <= 3
    )


@dataclass(frozen=True)
class Reply:
    """One SMTP reply.

    ``enhanced`` is the full RFC 3463 code (``"5.7.1"``) or empty for replies
    without one (EHLO lines). ``with_id`` decides whether `` (<conn-id>)`` is
    appended to the text: ``None`` means "for errors" (code >= 400), which is
    what mox does for every error it raises during a command.
    """

    code: int
    enhanced: str = ""
    text: str = ""
    with_id: bool | None = None

    def __post_init__(self) -> None:
        # A handler returning nonsense must not make us write an invalid
        # protocol line; fail where the Reply is built instead.
        if not isinstance(self.code, int) or not 100 <= self.code <= 999:
            raise ValueError(f"invalid smtp reply code {self.code!r}")
        if self.enhanced and not _valid_enhanced(self.enhanced):
            raise ValueError(f"invalid enhanced status code {self.enhanced!r}")

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 400

    def lines(self, conn_id: str = "") -> list[str]:
        """The reply as protocol lines (without CRLF)."""
        text = self.text.replace("\r\n", "\n").replace("\r", "\n")
        add_id = self.with_id if self.with_id is not None else self.is_error
        if add_id and conn_id:
            text = f"{text} ({conn_id})" if text else f"({conn_id})"
        prefix_code = str(self.code)
        ecode = self.enhanced
        sep = " " if ecode else ""
        out: list[str] = []
        msg_lines = text.split("\n")
        for i, line in enumerate(msg_lines):
            prelen = 3 + 1 + len(ecode) + len(sep)
            while prelen + len(line) > MAX_REPLY_LINE:
                e = MAX_REPLY_LINE - prelen
                cut = line.rfind(" ", 400 - prelen if 400 > prelen else 0, e)
                if cut <= 0:
                    cut = e
                out.append(f"{prefix_code}-{ecode}{sep}{line[:cut]}")
                line = line[cut:]
            dash = "-" if i < len(msg_lines) - 1 else " "
            out.append(f"{prefix_code}{dash}{ecode}{sep}{line}")
        return out

    def render(self, conn_id: str = "") -> bytes:
        """The reply as bytes ready to send, CRLF-terminated."""
        return "".join(line + "\r\n" for line in self.lines(conn_id)).encode("utf-8")


class SMTPError(Exception):
    """Raised while handling a command to answer it with ``reply``.

    ``close`` asks the session to close the connection after sending it.
    """

    def __init__(self, reply: Reply, close: bool = False) -> None:
        super().__init__(f"{reply.code} {reply.enhanced} {reply.text}")
        self.reply = reply
        self.close = close


def error(code: int, enhanced: str, text: str, *, close: bool = False) -> SMTPError:
    """Shorthand: ``raise error(550, "5.7.1", "must match authenticated user")``."""
    return SMTPError(Reply(code, enhanced, text), close=close)
