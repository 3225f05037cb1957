"""moxtrio-tally: a third-party plugin written from docs/plugins.md alone.

It imports nothing but ``moxtrio`` and the standard library, the way a
plugin author outside this repository writes one, and uses a hook of each
convention the page describes:

* start-up: its own table (``moxtrio_migrations``), settings
  (``moxtrio_configure``), a command (``moxtrio_ctl_commands``);
* async-dispatched verdicts: refuse listed senders at ``MAIL FROM``, tag
  every submission with an ``Extra`` value (``moxtrio_submission``);
* in-transaction observer: record every outgoing delivery event in its table,
  in the transaction that records the event (``moxtrio_outgoing_event``).

Settings, in ``<config dir>/plugins/tally.yaml``::

    blocked_senders:
      - spammer@localhost
    tag: campaign-7
"""

from __future__ import annotations

from dataclasses import dataclass

from moxtrio import (
    CtlCommand,
    CtlRequest,
    CtlResult,
    Migration,
    OutgoingEvent,
    PluginConfigError,
    PluginContext,
    Rejection,
    SQLConnection,
    Submission,
    hookimpl,
)

NAME = "tally"



@dataclass(frozen=True)
class Tally:
    """The plugin's settings in one server, kept in its context."""

    blocked: frozenset[str] = frozenset()
    tag: str = "tallied"


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return [
        Migration(
            NAME,
            1,
            # Portable DDL (translated for PostgreSQL): an id to order by, no rowid.
            "CREATE TABLE tally_events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " event TEXT NOT NULL, recipient TEXT NOT NULL, tag TEXT NOT NULL)",
        )
    ]


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    settings = ctx.plugin_settings(NAME)
    blocked = settings.get("blocked_senders", [])
    if not isinstance(blocked, list) or not all(isinstance(a, str) for a in blocked):
        raise PluginConfigError("tally.yaml: blocked_senders must be a list of addresses")
    tag = settings.get("tag", Tally.tag)
    if not isinstance(tag, str) or not tag:
        raise PluginConfigError("tally.yaml: tag must be a non-empty string")
    ctx.provide(Tally, Tally(frozenset(a.lower() for a in blocked), tag))


@hookimpl
def moxtrio_smtp_mail_from(ctx: PluginContext, listener_kind: str, address: str) -> Rejection | None:
    if address.lower() in (ctx.service(Tally) or Tally()).blocked:
        return Rejection(550, "5.7.1", "sender refused by tally")
    return None


@hookimpl
async def moxtrio_submission(ctx: PluginContext, submission: Submission) -> None:
    submission.extra["tally"] = (ctx.service(Tally) or Tally()).tag
    return None


@hookimpl
def moxtrio_outgoing_event(conn: SQLConnection, event: OutgoingEvent) -> None:
    tag = (event.extra or {}).get("tally", "")
    conn.execute(
        "INSERT INTO tally_events (event, recipient, tag) VALUES (?, ?, ?)",
        (event.event, event.recipient, tag),
    )


def _rows(conn: SQLConnection) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in conn.execute("SELECT event, recipient, tag FROM tally_events ORDER BY id")]


async def _show(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    rows = await ctx.store.read(_rows)
    return CtlResult("".join(f"{event} {rcpt} {tag}\n" for event, rcpt, tag in rows))


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return [CtlCommand(("tally", "show"), _show, "list the outgoing events seen")]
