"""mox's header folding for the headers it writes on delivery.

Tokens are added whole; one that would pass 76 columns starts a new
``\\r\\n\\t`` line (never the first token of a line). Used for
Authentication-Results, Received-SPF and Received, so they fold where mox's do;
the DKIM signer uses it with 78 columns (mox's DKIM-Signature folding).
"""

from __future__ import annotations

MAX_LINE = 76


class HeaderWriter:
    """Accumulates one header field; :meth:`value` ends it with CRLF."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.parts: list[str] = []
        self.line_len = 0
        self.nonfirst = False

    def add(self, sep: str, *texts: str) -> None:
        for text in texts:
            if self.nonfirst and self.line_len > 1 and self.line_len + len(sep) + len(text) > self.max_line:
                self.parts.append("\r\n\t")
                self.line_len = 1
            elif self.nonfirst and sep:
                self.parts.append(sep)
                self.line_len += len(sep)
            self.parts.append(text)
            self.line_len += len(text)
            self.nonfirst = True

    def add_wrap(self, text: str) -> None:
        """Add ``text`` breaking it anywhere (base64)."""
        while text:
            room = max(self.max_line - self.line_len, 1)
            piece, text = text[:room], text[room:]
            self.parts.append(piece)
            self.line_len += len(piece)
            if text:
                self.parts.append("\r\n\t")
                self.line_len = 1

    def newline(self) -> None:
        self.parts.append("\r\n\t")
        self.line_len = 1
        self.nonfirst = True

    def value(self) -> str:
        return "".join(self.parts) + "\r\n"
