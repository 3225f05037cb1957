"""The one exception type for configuration problems.

Every problem found while reading mox.conf/domains.conf (syntax, types,
unknown keys, cross-reference checks) is reported as a :class:`ConfigError`
carrying the file, the line and, where there is one, the key, so that the
operator sees ``domains.conf:12: unknown key "Foo"`` exactly like mox prints.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration file is invalid.

    ``str(e)`` is ``f"{path}:{line}: {message}"``; ``key`` names the config
    key the problem is about (``None`` when the line has no usable key).
    """

    def __init__(self, path: str, line: int, message: str, key: str | None = None) -> None:
        super().__init__(path, line, message, key)
        self.path = path
        self.line = line
        self.message = message
        self.key = key

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"
