"""Control commands the core itself offers (plugins add theirs by hook)."""

from __future__ import annotations

from core.plugin_api import CtlCommand, CtlRequest, CtlResult, PluginContext
from core.version import VERSION


async def _ping(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    return CtlResult("pong\n")


async def _version(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    return CtlResult(f"moxtrio {VERSION}\n")


async def _stop(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    if ctx.core.request_shutdown is not None:
        ctx.core.request_shutdown()
    return CtlResult("stopping\n")


async def _setaccountpassword(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    from core.accounts import set_password

    if len(req.args) != 1:
        return CtlResult("usage: moxtrio setaccountpassword ACCOUNT (password on stdin)\n", 2)
    password = req.stdin.rstrip("\r\n")
    if not password:
        return CtlResult("empty password\n", 2)
    try:
        await set_password(ctx, req.args[0], password)
    except KeyError as exc:
        return CtlResult(f"{exc.args[0]}\n", 1)
    return CtlResult("")


def builtin_commands() -> list[CtlCommand]:
    return [
        CtlCommand(("ping",), _ping, "check that the server answers"),
        CtlCommand(("version",), _version, "version of the running server"),
        CtlCommand(("stop",), _stop, "shut the server down cleanly"),
        CtlCommand(
            ("setaccountpassword",),
            _setaccountpassword,
            "set an account's password (read from stdin, or asked for on a terminal)",
            "account",
        ),
    ]
