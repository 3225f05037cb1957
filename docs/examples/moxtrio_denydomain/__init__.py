"""moxtrio-denydomain: refuse mail to recipient domains you never want to reach.

A complete third-party moxtrio plugin, the worked example of docs/plugins.md.
It shows the three things most plugins do: read settings at start-up
(``moxtrio_configure``), answer a verdict hook (``moxtrio_smtp_rcpt_to``), and
offer an administrator command (``moxtrio_ctl_commands``).

Settings, in ``<config dir>/plugins/denydomain.yaml``::

    domains:
      - example.net
      - .invalid        # a leading dot also matches subdomains
    message: recipient domain is not allowed here
"""

from __future__ import annotations

from moxtrio import (
    CtlCommand,
    CtlRequest,
    CtlResult,
    PluginConfigError,
    PluginContext,
    Rejection,
    hookimpl,
)

NAME = "denydomain"

_settings: dict[str, object] = {"domains": [], "message": "recipient domain not accepted"}
_refused: list[str] = []


def _denied(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    for entry in _settings["domains"]:  # type: ignore[attr-defined]
        entry = str(entry).lower()
        if entry.startswith(".") and (domain.endswith(entry) or domain == entry[1:]):
            return True
        if domain == entry:
            return True
    return False


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    settings = ctx.plugin_settings(NAME)
    domains = settings.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise PluginConfigError("denydomain.yaml: domains must be a list of domain names")
    _settings["domains"] = domains
    _settings["message"] = str(settings.get("message", _settings["message"]))


@hookimpl
def moxtrio_smtp_rcpt_to(listener_kind: str, address: str) -> Rejection | None:
    domain = address.rpartition("@")[2]
    if _denied(domain):
        _refused.append(address)
        return Rejection(550, "5.7.1", str(_settings["message"]))
    return None


async def _status(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    lines = [f"denied domains: {', '.join(map(str, _settings['domains'])) or 'none'}"]  # type: ignore[call-overload]
    lines.append(f"refused recipients since start: {len(_refused)}")
    return CtlResult("\n".join(lines) + "\n")


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return [CtlCommand(("denydomain", "status"), _status, "show denied domains")]
