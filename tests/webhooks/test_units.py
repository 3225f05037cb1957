"""Small pure pieces: Go-style JSON, the backoff table, filters."""

from __future__ import annotations

import random
from datetime import timedelta

from plugins.webhooks.backoff import INTERVALS, LAST_INTERVAL, hook_backoff
from plugins.webhooks.gojson import marshal, marshal_indent


def test_marshal_like_go() -> None:
    assert marshal({"a": "<x&y>\u2028", "b": "hi \u263a\n\x01", "c": None, "d": [1, True]}) == (
        '{"a":"\\u003cx\\u0026y\\u003e\\u2028","b":"hi \u263a\\n\\u0001","c":null,"d":[1,true]}'
    )
    assert marshal({"s": "bad \udcff"}) == '{"s":"bad ?"}'
    assert marshal_indent({"a": 1, "b": []}) == '{\n\t"a": 1,\n\t"b": []\n}\n'


def test_backoff_table_and_jitter_bounds() -> None:
    assert [int(i.total_seconds()) for i in INTERVALS] == [
        60, 120, 240, 450, 900, 1800, 3600, 7200, 14400, 28800, 57600]
    rng = random.Random(1)
    for attempts, base in [*enumerate(INTERVALS), (11, LAST_INTERVAL), (30, LAST_INTERVAL)]:
        seen = {hook_backoff(attempts, rng) for _ in range(300)}
        assert min(seen) >= base * 0.99 and max(seen) < base * 1.01
        assert min(seen) < base < max(seen)
    assert sum(INTERVALS, timedelta()) == timedelta(hours=31, minutes=59, seconds=30)
