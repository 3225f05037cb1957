"""The account interface's session authenticator, as its own type.

Both web interfaces use the core's WebAuth; a type of its own lets this
plugin find its authenticator in the server's context
(``ctx.require(AccountWebAuth)``) without module globals or string keys.
"""

from __future__ import annotations

from core.webui.auth import WebAuth


class AccountWebAuth(WebAuth):
    """The webaccount plugin's WebAuth (account logins, 24 hour sessions)."""

