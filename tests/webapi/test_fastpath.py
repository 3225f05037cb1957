"""Method calls answered straight from ASGI write the same header lines as Quart would."""

from __future__ import annotations

from plugins.webapi.answers import Answer, error_answer, text_answer
from plugins.webapi.errors import WebapiError
from plugins.webapi.fastpath import ScopeHeaders
from plugins.webapi.routes import SECURITY_HEADERS


def _quart_lines(answer: Answer) -> list[tuple[bytes, bytes]]:
    """The lines of the Quart response the blueprint sends, after its security-header hook."""
    resp = answer.response()
    for k, v in SECURITY_HEADERS.items():
        resp.headers[k] = v
    return [(k.lower().encode(), v.encode()) for k, v in resp.headers.items()]


def test_header_lines_and_order_match_the_quart_response() -> None:
    answers = [
        text_answer(401, "401 - unauthorized", {"WWW-Authenticate": "Basic realm=webapi"}),
        text_answer(429, "429 - too many auth attempts"),
        error_answer(WebapiError("protocol", "missing/empty request")),
        Answer(200, b'{"MessageID":"<x@localhost>"}\n', "application/json; charset=utf-8"),
        Answer(200, b"raw message\r\n", "text/plain"),
    ]
    for answer in answers:
        assert answer.asgi_headers(SECURITY_HEADERS) == _quart_lines(answer)
        assert answer.response().status_code == answer.status


def test_scope_headers_are_case_insensitive_and_keep_the_first() -> None:
    h = ScopeHeaders([(b"content-type", b"a"), (b"Authorization", b"Basic x"), (b"content-type", b"b")])
    assert h.get("Content-Type") == "a"
    assert h.get("authorization") == "Basic x"
    assert h.get("X-Forwarded-For") is None
