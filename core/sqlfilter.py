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

from core.gofmt import TimeExprError, parse_rfc3339, parse_time_expr
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

    def order(self, fields: dict[str, str], sort: Sort | None) -> str:
        """The ORDER BY for ``sort`` (by id without one); with ``LastID`` set,
        also the condition that continues after the last row of the previous
        page (keyset pagination, ties broken by id)."""
        if sort is None:
            return " ORDER BY id"
        col = fields.get(sort.Field)
        if col is None:
            raise FilterError(f'unknown sort order field "{sort.Field}"')
        direction = "ASC" if sort.Asc else "DESC"
        if sort.LastID > 0:
            if isinstance(sort.Last, datetime):
                last = sort.Last
            else:
                try:
                    last = parse_rfc3339(str(sort.Last or ""))
                except TimeExprError as exc:
                    raise FilterError(str(exc)) from exc
            op = ">" if sort.Asc else "<"
            t = to_db_time(last)
            self.add(f"({col} {op} ? OR ({col} = ? AND id {op} ?))", t, t, sort.LastID)
        return f" ORDER BY {col} {direction}, id {direction}"
