"""JSON exactly as Go's ``encoding/json`` writes webhook payloads.

Receivers written against mox compare or hash bodies, so the bytes matter.
The encoder lives in :mod:`core.gofmt` with moxtrio's other Go-compatible
texts; this module keeps the webhooks plugin's names for it.
"""

from __future__ import annotations

from core.gofmt import marshal, marshal_indent, sorted_map

__all__ = ["marshal", "marshal_indent", "sorted_map"]
