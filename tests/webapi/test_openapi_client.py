"""A client generated from ``openapi.json`` by openapi-python-client imports and works."""

from __future__ import annotations

import importlib
import io
import json
import sys
from pathlib import Path

import trio

from tests.webapi.conftest import AUTH, WebapiServer
from tests.webapi.test_send import LATER_S, parse

MSG = b"From: <a@localhost>\r\nTo: <mox@localhost>\r\nSubject: generated\r\n\r\nbody\r\n"


async def test_generated_python_client_sends_and_gets(srv: WebapiServer, tmp_path: Path) -> None:
    doc = (await srv.http.get(srv.base + "openapi.json")).json()
    # One request content type per operation (a choice of two breaks generators).
    for item in doc["paths"].values():
        if "post" in item:
            assert len(item["post"]["requestBody"]["content"]) == 1
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    (tmp_path / "config.yaml").write_text("post_hooks: []\npackage_name_override: moxtrio_generated\n")
    proc = await trio.run_process(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
         "--config", "config.yaml", "--meta", "none", "--output-path", "moxtrio_generated"],
        cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False,
    )
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert "Warning" not in out, out

    sys.path.insert(0, str(tmp_path))
    try:
        gen = importlib.import_module("moxtrio_generated")
        models = importlib.import_module("moxtrio_generated.models")
        types = importlib.import_module("moxtrio_generated.types")
        send = importlib.import_module("moxtrio_generated.api.default.send")
        message_get = importlib.import_module("moxtrio_generated.api.default.message_get")
        part_get = importlib.import_module("moxtrio_generated.api.default.message_part_get")
    finally:
        sys.path.remove(str(tmp_path))

    client = gen.Client(base_url=srv.base, httpx_args={"auth": AUTH}, raise_on_unexpected_status=True)
    async with client as c:
        request = {"To": [{"Address": "mox@localhost"}], "Subject": "gen", "Text": "hi", "FutureRelease": LATER_S}
        upload = types.File(payload=io.BytesIO(b"attached bytes"), file_name="a.txt", mime_type="text/plain")
        result = await send.asyncio(client=c, body=models.SendBody(request=json.dumps(request), attachedfile=[upload]))
        assert isinstance(result, models.SendResult), result
        assert result.submissions[0].address == "mox@localhost"
        _, data = await srv.queued(result.submissions[0].queue_msg_id)
        attached = list(parse(data).iter_parts())[1]
        assert (attached.get_filename(), attached.get_content()) == ("a.txt", "attached bytes")

        mid = await srv.store_message(MSG)
        got = await message_get.asyncio(client=c, body=models.MessageGetBody(request=json.dumps({"MsgID": mid})))
        assert isinstance(got, models.MessageGetResult), got
        assert got.message.subject == "generated" and got.meta.mailbox_name == "Inbox"
        err = await message_get.asyncio(client=c, body=models.MessageGetBody(request=json.dumps({"MsgID": 999})))
        assert isinstance(err, models.Error) and err.code.value == "messageNotFound"
        part = await part_get.asyncio_detailed(
            client=c, body=models.MessagePartGetBody(request=json.dumps({"MsgID": mid, "PartPath": []}))
        )
        assert part.status_code == 200 and part.content == b"body\r\n"
