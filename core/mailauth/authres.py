"""``Authentication-Results`` headers (RFC 8601) in mox's layout.

One method per line after the authserv-id, ``method=result``, then the
comment (only when a reason or properties follow, as mox does), ``reason=``
and ``ptype.property=value`` tokens, folded at 76 columns. Values that are
not tokens are quoted; address-like values may contain ``@``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.mailauth.headerwriter import HeaderWriter

# A value needs quotes when it has controls, space, DEL or a tspecial; "@"
# only when the value is not address-like.
_NEEDS_QUOTE = re.compile(r'[\x00- \x7f()<>,;:\\"/\[\]?=]')
_NEEDS_QUOTE_NOT_ADDR = re.compile(r'[\x00- \x7f()<>,;:\\"/\[\]?=@]')
_QUOTE_SPECIAL = re.compile(r'(["\\])')


@dataclass
class AuthProp:
    type: str
    property: str
    value: str
    addr_like: bool = False
    comment: str = ""


@dataclass
class AuthMethod:
    method: str
    result: str
    comment: str = ""
    reason: str = ""
    props: list[AuthProp] = field(default_factory=list)


def _value(s: str, addr_like: bool) -> str:
    if s and (_NEEDS_QUOTE if addr_like else _NEEDS_QUOTE_NOT_ADDR).search(s) is None:
        return s
    return '"' + _QUOTE_SPECIAL.sub(r"\\\1", s) + '"'


@dataclass
class AuthResults:
    hostname: str
    methods: list[AuthMethod] = field(default_factory=list)
    comment: str = ""

    def header(self) -> bytes:
        """The header field, CRLF-terminated."""
        w = HeaderWriter()
        comment = f" ({self.comment})" if self.comment else ""
        w.add("", f"Authentication-Results:{comment} {_value(self.hostname, False)};")
        for i, m in enumerate(self.methods):
            w.newline()
            tokens = [f"{m.method}={m.result}"]
            if m.comment and (m.reason or m.props):
                tokens.append(f"({m.comment})")
            if m.reason:
                tokens.append(f"reason={_value(m.reason, False)}")
            for p in m.props:
                c = f" ({p.comment})" if p.comment else ""
                tokens.append(f"{p.type}.{p.property}={_value(p.value, p.addr_like)}{c}")
            for j, t in enumerate(tokens):
                if j == len(tokens) - 1 and i < len(self.methods) - 1:
                    t += ";"
                w.add(" " if j > 0 else "", t)
        return w.value().encode()


def claims_authserv_id(field_value: bytes, hostname: str) -> bool:
    """Whether an Authentication-Results value names ``hostname`` as its authserv-id.

    Such headers in incoming mail could be forged and are removed before
    ours is added (RFC 8601 §5). Leading comments are skipped.
    """
    text = field_value.decode("utf-8", "replace")
    text = re.sub(r"\r?\n[ \t]", " ", text).strip()
    while text.startswith("("):
        depth = 0
        for k, c in enumerate(text):
            depth += c == "("
            depth -= c == ")"
            if depth == 0:
                text = text[k + 1:].lstrip()
                break
        else:
            return False
    ident = re.split(r"[;\s(]", text, maxsplit=1)[0].strip('"')
    return ident.lower().rstrip(".") == hostname.lower().rstrip(".")
