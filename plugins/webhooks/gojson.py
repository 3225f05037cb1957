"""JSON exactly as Go's ``encoding/json`` writes webhook payloads (spec 02 §3).

Receivers written against mox compare or hash bodies, so the bytes matter:
compact separators, no trailing newline, ``<``/``>``/``&`` and U+2028/U+2029
escaped as ``\\u003c`` etc. (Go's default HTML escaping), other non-ASCII
characters as raw UTF-8, and map keys (``Extra``, ``ContentTypeParams``)
sorted as Go sorts maps. Python's ``json`` already escapes control
characters the way Go 1.22+ does (``\\n``, ``\\b``, ``\\u0001``).
"""

from __future__ import annotations

import json
from typing import Any

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _escape_html(text: str) -> str:
    # These characters only occur inside JSON strings (never in the syntax).
    for ch, esc in _HTML.items():
        if ch in text:
            text = text.replace(ch, esc)
    return text


def _clean(obj: Any) -> Any:
    """Replace lone surrogates (undecodable input) like Go replaces invalid UTF-8."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def marshal(obj: Any) -> str:
    """Go ``json.Marshal``: compact, HTML-escaped, no trailing newline."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(_clean(obj), ensure_ascii=False, separators=(",", ":"))
    return _escape_html(text)


def marshal_indent(obj: Any) -> str:
    """Go ``json.Encoder`` with ``SetIndent("", "\\t")``: tab-indented plus a newline."""
    text = json.dumps(_clean(obj), ensure_ascii=False, indent="\t")
    return _escape_html(text) + "\n"


def sorted_map(m: dict[str, str] | None) -> dict[str, str] | None:
    """A Go map as it is marshalled: keys in byte order; nil stays null."""
    if m is None:
        return None
    return {k: m[k] for k in sorted(m, key=lambda s: s.encode("utf-8", "replace"))}
