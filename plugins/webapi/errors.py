"""The webapi's error answer: a Code clients switch on and a human Message.

Every failure a method can report is raised as :class:`WebapiError` and
rendered as ``400`` with ``{"Code": ..., "Message": ...}``;
the codes are listed in :data:`plugins.webapi.types.ERROR_CODES`.
"""

from __future__ import annotations


class WebapiError(Exception):
    """An error answer with one of mox's codes (``protocol``, ``user``, ``badFrom``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def protocol(message: str) -> WebapiError:
    return WebapiError("protocol", message)


def user(message: str) -> WebapiError:
    return WebapiError("user", message)


def server(message: str) -> WebapiError:
    return WebapiError("server", message)
