"""WHERE clauses for admin filters (queue, retired, webhooks).

mox's admin filters share one shape: optional conditions combined with AND,
and time conditions written as relative or absolute expressions
(``<-1h``, ``>2026-01-02T…``). The queue and the webhooks plugin build their
queries with these helpers so the expressions mean the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.queue.timefmt import TimeExprError, parse_time_expr
from core.store.models import to_db_time


@dataclass
class Sort:
    """Keyset pagination of admin listings (mox's Sort JSON): order by ``Field``,
    descending unless ``Asc``, continuing after (``Last``, ``LastID``)."""

    Field: str = ""
    LastID: int = 0
    Last: Any = None
    Asc: bool = False


class FilterError(ValueError):
    """A filter or sort that can't be applied (bad time expression, unknown field)."""


@dataclass
class Where:
    """Conditions joined with AND, and their parameters."""

    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, clause: str, *args: Any) -> None:
        self.where.append(clause)
        self.args.extend(args)

    def time(self, column: str, expr: str, now: datetime) -> None:
        """Add ``column <op> time`` for a filter time expression ("" = no condition)."""
        if not expr:
            return
        try:
            op, ref = parse_time_expr(expr, now)
        except TimeExprError as exc:
            raise FilterError(str(exc)) from exc
        self.add(f"{column} {op} ?", to_db_time(ref))

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.where)) if self.where else ""
