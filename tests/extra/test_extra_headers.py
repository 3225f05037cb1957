"""X-Mox-Extra-* headers -> Extra: canonical keys, duplicates."""

from __future__ import annotations

from core.events import Submission
from core.plugin_api import Rejection
from plugins.extra import canonical_header_name, extra_from_headers, moxtrio_submission


def test_canonical_header_name_is_go_style() -> None:
    assert canonical_header_name("x-mox-extra-ORDER-ref") == "X-Mox-Extra-Order-Ref"
    assert canonical_header_name("X-Mox-Extra-user-id") == "X-Mox-Extra-User-Id"
    # Names with characters outside the token set are left alone.
    assert canonical_header_name("x-mox-extra-a b") == "x-mox-extra-a b"


def test_extra_from_headers_keys_values_and_other_headers_ignored() -> None:
    headers = [("Subject", "x"), ("x-mox-extra-ORDER-ref", " 42 "), ("X-Mox-Extra-user-id", "u1"),
               ("X-Mox-Extraneous", "no")]
    assert extra_from_headers(headers) == {"Order-Ref": "42", "User-Id": "u1"}


def test_duplicate_canonical_key_is_rejected() -> None:
    result = extra_from_headers([("X-Mox-Extra-Key", "a"), ("X-Mox-Extra-key", "b")])
    assert result == Rejection(554, "5.6.0", 'duplicate x-mox-extra- key "Key"')


def test_hook_fills_extra_for_smtp_only() -> None:
    smtp = Submission(account="a", source="smtp", mail_from="", recipients=[],
                      headers=[("X-Mox-Extra-A", "1")])
    assert moxtrio_submission(None, smtp) is None  # type: ignore[arg-type]
    assert smtp.extra == {"A": "1"}
    webapi = Submission(account="a", source="webapi", mail_from="", recipients=[],
                        headers=[("X-Mox-Extra-A", "1")])
    assert moxtrio_submission(None, webapi) is None  # type: ignore[arg-type]
    assert webapi.extra == {}
