"""The admin interface's session authenticator, as its own type.

Both web interfaces use the core's WebAuth; a type of its own lets this
plugin find its authenticator in the server's context
(``ctx.require(AdminWebAuth)``) without module globals or string keys.
"""

from __future__ import annotations

from core.webui.auth import WebAuth


class AdminWebAuth(WebAuth):
    """The webadmin plugin's WebAuth (admin password, 12 hour sessions)."""

