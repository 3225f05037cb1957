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
        # Runs for every token of every delivered message's headers: state in locals.
        parts, line_len, nonfirst, max_line = self.parts, self.line_len, self.nonfirst, self.max_line
        lsep = len(sep)
        for text in texts:
            if nonfirst and line_len > 1 and line_len + lsep + len(text) > max_line:
                parts.append("\r\n\t")
                line_len = 1
            elif nonfirst and sep:
                parts.append(sep)
                line_len += lsep
            parts.append(text)
            line_len += len(text)
            nonfirst = True
        self.line_len, self.nonfirst = line_len, nonfirst

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
