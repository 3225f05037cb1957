"""Memoizing pure string functions that requests call again and again with the same input.

A webapi Send or SMTP submission parses the same few addresses, localparts
and Content-Type values on every request. The results are remembered for
inputs of a usual length only, so a cache of a few thousand entries never
holds large strings a client chose. Errors are not remembered
(``functools.lru_cache`` keeps results, not exceptions): a bad input is
checked again, and answered the same way, each time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def memoize_short(max_len: int, maxsize: int = 4096) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """Decorate ``fn(s)``: remembered for ``str`` inputs of at most ``max_len`` characters."""

    def wrap(fn: Callable[[str], T]) -> Callable[[str], T]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(s: str) -> T:
            if isinstance(s, str) and len(s) <= max_len:
                return cached(s)
            return fn(s)

        return call

    return wrap
