"""Suppression lists at scale (moxtrio extensions): CSV/JSON import and export,
categories, expiry, filtered and paginated listing; over the webapi, the
control socket and the real ``moxtrio`` command."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from core import ctl
from core.store.models import utcnow
from plugins.suppression.bulk import ImportFailed, parse_import
from plugins.suppression.records import TABLE
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.procs import run_cli
from tests.webapi.conftest import AUTH, WebapiServer, start

N = 100_000
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_parse_csv_with_and_without_header_and_json() -> None:
    text = "Address,Category,Reason,Until\nJohn.Doe+x@Example.org,complaint,spam button,2027-01-01T00:00:00Z\n"
    [e] = parse_import("mox", text, "csv", NOW)
    assert (e.base_address, e.original_address) == ("johndoe@example.org", "John.Doe+x@example.org")
    assert e.kind == "complaint" and e.reason == "spam button" and not e.manual
    assert e.until == datetime(2027, 1, 1, tzinfo=UTC)
    plain = parse_import("mox", "a@example.org\nb@example.org,unsubscribe\n\n", "csv", NOW)
    assert [(x.base_address, x.kind, x.reason, x.manual) for x in plain] == [
        ("a@example.org", "manual", "imported", True), ("b@example.org", "unsubscribe", "imported", True)]
    js = parse_import("mox", json.dumps(["c@example.org", {"OriginalAddress": "d@example.org",
                                                          "Category": "bounce", "Until": None}]), "json", NOW)
    assert [(x.base_address, x.kind) for x in js] == [("c@example.org", "manual"), ("d@example.org", "bounce")]
    # The same base address twice: the last line wins.
    dup = parse_import("mox", "a+1@example.org,manual,first\na+2@example.org,manual,second\n", "csv", NOW)
    assert [(x.original_address, x.reason) for x in dup] == [("a+2@example.org", "second")]


def test_parse_reports_every_bad_line() -> None:
    text = "address,category,until\nok@example.org\nnot an address\nx@example.org,spam\ny@example.org,,tomorrow\n,manual\n"
    with pytest.raises(ImportFailed) as info:
        parse_import("mox", text, "csv", NOW)
    lines = [n for n, _ in info.value.errors]
    assert lines == [3, 4, 5, 6]
    msgs = dict(info.value.errors)
    assert "bad address" in msgs[3] and "unknown category 'spam'" in msgs[4]
    assert "bad until" in msgs[5] and "missing address" in msgs[6]
    assert str(info.value).startswith("4 bad line(s), nothing imported: line 3:")
    with pytest.raises(ImportFailed) as info2:
        parse_import("mox", "[1, {\"Address\": \"a@b.example\"}, {}]", "json", NOW)
    assert [n for n, _ in info2.value.errors] == [1, 3]
    with pytest.raises(ImportFailed):
        parse_import("mox", "{", "json", NOW)


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[WebapiServer]:
    async for s in start(tmp_path):
        yield s


def ext_url(srv: WebapiServer, method: str) -> str:
    return srv.v0 + method


async def count(srv: WebapiServer) -> int:
    return int(await srv.ctx.store.read(lambda c: c.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]))


async def test_import_100000_atomic_then_page_and_export(srv: WebapiServer, capsys: Any) -> None:
    body = "address,category,reason\n" + "".join(
        f"user{i}@example{i % 50}.org,{'complaint' if i % 10 == 0 else 'manual'},import {i}\n"
        for i in range(N)
    )
    # One bad line far down: nothing is imported, and the report names it.
    bad = body.replace("user77777@example27.org", "user77777@@example27.org")
    r = await srv.http.post(ext_url(srv, "SuppressionImport"), content=bad.encode(), auth=AUTH,
                            headers={"Content-Type": "text/csv"}, timeout=120)
    assert r.status_code == 400, r.text
    assert r.json()["Code"] == "user"
    assert r.json()["Message"].startswith("1 bad line(s), nothing imported: line 77779: bad address")
    assert await count(srv) == 0

    t0 = time.monotonic()
    r = await srv.http.post(ext_url(srv, "SuppressionImport"), content=body.encode(), auth=AUTH,
                            headers={"Content-Type": "text/csv"}, timeout=120)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json() == {"Imported": N}
    assert await count(srv) == N
    with capsys.disabled():
        print(f"\nimport of {N} suppressions over the webapi: {elapsed:.2f}s")
    assert (await srv.call("SuppressionPresent", {"EmailAddress": "User12345+tag@example45.org"}))["Present"]

    # Keyset pages of 2000 cover every entry exactly once.
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        req: dict[str, Any] = {"Format": "json", "Limit": 2000, "After": after}
        r = await srv.http.post(ext_url(srv, "SuppressionExport"), json=req, auth=AUTH)
        assert r.status_code == 200, r.text
        seen += [e["BaseAddress"] for e in r.json()]
        pages += 1
        after = r.headers.get("X-Mox-Suppression-Next", "")
        if not after:
            break
    assert pages == N // 2000 and len(seen) == N == len(set(seen))
    assert seen == sorted(seen)

    # Filters: category and substring.
    r = await srv.http.post(ext_url(srv, "SuppressionExport"), auth=AUTH,
                            json={"Format": "csv", "Category": "complaint", "Contains": "user1234"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {x["BaseAddress"] for x in rows} == {"user12340@example40.org"}
    assert all(x["Category"] == "complaint" for x in rows)

    # The streamed export holds everything; JSON re-imports unchanged.
    async with srv.http.stream("POST", ext_url(srv, "SuppressionExport"), auth=AUTH,
                               json={"Format": "json"}) as resp:
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        raw = b"".join([chunk async for chunk in resp.aiter_bytes()])
    exported = json.loads(raw)
    assert len(exported) == N and set(exported[0]) >= {"BaseAddress", "Category", "Until", "Reason"}
    r = await srv.http.post(ext_url(srv, "SuppressionImport"), content=raw, auth=AUTH,
                            headers={"Content-Type": "application/json"}, timeout=120)
    assert r.json() == {"Imported": N}
    assert await count(srv) == N
    # mox's SuppressionList keeps its shape.
    listed = (await srv.call("SuppressionList", {}))["Suppressions"]
    assert len(listed) == N and list(listed[0]) == [
        "ID", "Created", "Account", "BaseAddress", "OriginalAddress", "Manual", "Reason"]


async def test_expiry_and_bad_requests(srv: WebapiServer) -> None:
    past = (utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"address,until\nold@example.org,{past}\nnew@example.org,\n"
    r = await srv.http.post(ext_url(srv, "SuppressionImport") + "?category=unsubscribe", content=body,
                            auth=AUTH, headers={"Content-Type": "text/csv"})
    assert r.json() == {"Imported": 2}
    assert not (await srv.call("SuppressionPresent", {"EmailAddress": "old@example.org"}))["Present"]
    assert (await srv.call("SuppressionPresent", {"EmailAddress": "new@example.org"}))["Present"]
    assert [s["BaseAddress"] for s in (await srv.call("SuppressionList", {}))["Suppressions"]] == ["new@example.org"]
    # A lapsed entry is replaced by a new add.
    await srv.call("SuppressionAdd", {"EmailAddress": "old@example.org", "Manual": True})
    assert (await srv.call("SuppressionPresent", {"EmailAddress": "old@example.org"}))["Present"]
    # Bad requests are 400s with a code.
    r = await srv.http.post(ext_url(srv, "SuppressionImport"), content=b"x", auth=AUTH,
                            headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["Code"] == "user"
    r = await srv.http.post(ext_url(srv, "SuppressionExport"), json={"After": "!!"}, auth=AUTH)
    assert r.status_code == 400 and r.json()["Code"] == "user"
    r = await srv.http.post(ext_url(srv, "SuppressionExport"), json={"Category": "spam"}, auth=AUTH)
    assert r.status_code == 400 and r.json()["Code"] == "user"


async def test_automatic_entries_get_category_and_account_expiry(tmp_path: Path) -> None:
    conf, ip = localserve_config_dir(tmp_path)
    (conf / "plugins").mkdir()
    (conf / "plugins" / "suppression.yaml").write_text("Accounts:\n  mox:\n    AutomaticExpiry: 720h\n")
    async with running_server(conf) as server, httpx.AsyncClient(timeout=20) as http:
        srv = WebapiServer(server, ip, conf, http)
        await srv.call("Send", {"To": [{"Address": "userpermerror@example.org"}], "Text": "x"})
        with trio.move_on_after(15):
            while not (await srv.call("SuppressionList", {}))["Suppressions"]:
                await trio.sleep(0.05)
        r = await http.post(ext_url(srv, "SuppressionExport"), json={"Format": "json"}, auth=AUTH)
        [entry] = r.json()
        assert entry["Category"] == "bounce" and entry["Manual"] is False
        created = datetime.fromisoformat(entry["Created"].replace("Z", "+00:00"))
        until = datetime.fromisoformat(entry["Until"].replace("Z", "+00:00"))
        assert until - created == timedelta(hours=720)


async def test_ctl_export_import_page(srv: WebapiServer) -> None:
    path = ctl.socket_path(Path(srv.ctx.config.data_dir))

    async def cli(*argv: str, stdin: str = "") -> ctl.CtlResult:
        return await trio.to_thread.run_sync(lambda: ctl.call(path, list(argv), stdin))

    body = "".join(f"p{i:03d}@example.org\n" for i in range(250))
    res = await cli("queue", "suppress", "import", "-account", "mox", "-category", "manual", stdin=body)
    assert res.exit_code == 0 and res.output == "250 suppression(s) imported\n"
    bad = await cli("queue", "suppress", "import", "-account", "mox", stdin="ok@example.org\nbad@@x\n")
    assert bad.exit_code == 1 and bad.output.startswith("line 2: bad address")
    assert (await cli("queue", "suppress", "import", "-account", "nosuch", stdin=body)).exit_code == 1
    assert (await cli("queue", "suppress", "import")).exit_code == 2
    page = await cli("queue", "suppress", "page", "-account", "mox", "-n", "100")
    lines = page.output.splitlines()
    assert lines[0].startswith("suppressions (") and len(lines) == 102 and lines[-1].startswith("next: ")
    page2 = await cli("queue", "suppress", "page", "-account", "mox", "-n", "200", "-after", lines[-1][6:])
    assert len(page2.output.splitlines()) == 151 and '"p100@example.org"' in page2.output.splitlines()[1]
    exported = await cli("queue", "suppress", "export", "-account", "mox", "-format", "json")
    assert len(json.loads(exported.output)) == 250
    csv_out = await cli("queue", "suppress", "export", "-contains", "p00")
    assert csv_out.output.splitlines()[0] == "Account,BaseAddress,OriginalAddress,Manual,Reason,Category,Created,Until"
    assert len(csv_out.output.splitlines()) == 11


@pytest.mark.slow
def test_moxtrio_command_reads_import_from_stdin(tmp_path: Path) -> None:
    from tests.support.procs import localserve

    with localserve(tmp_path) as server:
        conf = str(server.directory / "mox.conf")
        res = run_cli("-config", conf, "queue", "suppress", "import", "-account", "mox",
                      stdin="a@example.org,complaint\nb@example.org\n")
        assert res.returncode == 0 and res.stdout == "2 suppression(s) imported\n", res.stderr
        out = run_cli("-config", conf, "queue", "suppress", "export", "-category", "complaint")
        assert out.stdout.splitlines()[1].startswith("mox,a@example.org,a@example.org,false,imported,complaint,")
