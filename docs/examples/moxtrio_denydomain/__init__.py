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

from dataclasses import dataclass, field

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


@dataclass
class DenyDomain:
    """This plugin's state in one server, kept in its context (never in module globals:
    one process may run several servers, tests do)."""

    domains: list[str]
    message: str = "recipient domain not accepted"
    refused: list[str] = field(default_factory=list)

    def denied(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        for entry in self.domains:
            entry = entry.lower()
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
    state = DenyDomain(domains)
    state.message = str(settings.get("message", state.message))
    ctx.provide(DenyDomain, state)


@hookimpl
def moxtrio_smtp_rcpt_to(ctx: PluginContext, listener_kind: str, address: str) -> Rejection | None:
    state = ctx.service(DenyDomain)
    if state is not None and state.denied(address.rpartition("@")[2]):
        state.refused.append(address)
        return Rejection(550, "5.7.1", state.message)
    return None


async def _status(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    state = ctx.service(DenyDomain) or DenyDomain([])
    lines = [f"denied domains: {', '.join(state.domains) or 'none'}"]
    lines.append(f"refused recipients since start: {len(state.refused)}")
    return CtlResult("\n".join(lines) + "\n")


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return [CtlCommand(("denydomain", "status"), _status, "show denied domains")]
