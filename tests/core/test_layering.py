"""Layering: lower modules do not import higher ones; Go-compatible texts live once."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.support.procs import ROOT


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_gofmt_is_a_leaf() -> None:
    names = imports_of(ROOT / "core" / "gofmt.py")
    assert names
    assert {n.split(".")[0] for n in names} <= set(sys.stdlib_module_names)


def test_sqlfilter_imports_only_below_the_queue() -> None:
    names = {n for n in imports_of(ROOT / "core" / "sqlfilter.py") if n.startswith("core")}
    assert "core.gofmt" in names
    assert all(n == "core.gofmt" or n.startswith("core.store") for n in names), names


def test_dsnmatch_reads_queue_tables_only_through_store_functions() -> None:
    source = (ROOT / "core" / "queue" / "dsnmatch.py").read_text()
    strings = [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    sql = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE)\b.*\b(queue|retired)\b|\{table\}", re.I | re.S)
    assert strings
    assert [s for s in strings if sql.search(s)] == []
    assert "queue_rows.retired_by_from_id(" in source


def test_old_names_are_the_gofmt_implementations() -> None:
    from datetime import timedelta

    from core import goflags, gofmt
    from core.config import sconf
    from core.message import parsed
    from core.queue import timefmt
    from core.smtp import parser
    from plugins.suppression import commands
    from plugins.webapi import jsoncodec
    from plugins.webhooks import gojson

    assert timefmt.format_go_duration is gofmt.format_go_duration
    assert timefmt.parse_time_expr is gofmt.parse_time_expr
    assert goflags.parse_flags is gofmt.parse_flags and goflags.go_quote is gofmt.go_quote
    assert gojson.marshal is gofmt.marshal and gojson.sorted_map is gofmt.sorted_map
    assert parsed.format_json_time is gofmt.format_json_time
    assert jsoncodec.format_time is gofmt.format_go_time
    assert parser.go_quote is gofmt.go_quote
    assert commands.format_go_time_seconds is gofmt.format_go_time_seconds
    assert sconf.format_duration_ns is gofmt.format_duration_ns
    assert sconf.format_duration(sconf.parse_duration("1h0m0.5s")) == "1h0m0.5s"
    assert gofmt.format_go_duration(timedelta(hours=1, seconds=0.6)) == "1h0m1s"


def test_go_time_json_form_has_four_digit_years() -> None:
    """Go's zero time, which mox's JSON carries for unset times, keeps its padding."""
    from datetime import UTC, datetime, timedelta, timezone

    from core.gofmt import format_go_time, format_json_time

    assert format_go_time(datetime.min.replace(tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert format_json_time(None) is None
    t = datetime(2026, 11, 24, 1, 2, 3, 450000, tzinfo=timezone(timedelta(hours=-2, minutes=-30)))
    assert format_json_time(t) == "2026-11-24T01:02:03.45-02:30"


def _core_imports(paths: list[Path]) -> dict[str, set[str]]:
    assert paths
    return {p.name: {n for n in imports_of(p) if n.startswith("core")} for p in paths}


def test_delivery_imports_neither_the_queue_nor_the_smtp_server() -> None:
    """Outbound delivery sits below the queue: it may not reach up into it."""
    found = _core_imports(sorted((ROOT / "core" / "delivery").glob("*.py")))
    bad = {f: sorted(n for n in names if n.startswith(("core.queue", "core.smtp"))) for f, names in found.items()}
    assert {f: n for f, n in bad.items() if n} == {}
    assert "core.dns" in found["client.py"]


def test_smtp_server_does_not_import_delivery_or_the_queue() -> None:
    found = _core_imports(sorted((ROOT / "core" / "smtp").glob("*.py")))
    bad = {
        f: sorted(n for n in names if n.startswith(("core.delivery", "core.queue")))
        for f, names in found.items()
    }
    assert {f: n for f, n in bad.items() if n} == {}
    assert not (ROOT / "core" / "smtp" / "client.py").exists()


def test_the_queue_delivers_through_the_delivery_package() -> None:
    assert "core.delivery.client" in imports_of(ROOT / "core" / "queue" / "deliver.py")


def test_go_formatters_exist_once() -> None:
    """Go's %q, Duration.String, rounded time and MarshalIndent are defined only in core/gofmt.py."""
    names = ("go_quote", "format_go_time_seconds", "format_duration_ns", "_frac", "marshal_indent")
    defined: dict[str, list[str]] = {}
    for root in ("core", "plugins"):
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef) and node.name in names:
                    defined.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert defined == {n: ["core/gofmt.py"] for n in names}


def test_first_party_plugins_take_the_public_api_from_moxtrio() -> None:
    """A name moxtrio exports is imported from moxtrio, never from the core module behind it."""
    import importlib

    import moxtrio

    paths = sorted((ROOT / "plugins").rglob("*.py"))
    assert paths
    through_core: list[str] = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("core"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    obj = getattr(module, alias.name, None)
                    if alias.name in moxtrio.__all__ and obj is getattr(moxtrio, alias.name):
                        through_core.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert through_core == []
