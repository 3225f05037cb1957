"""Send with uploads too large to keep in memory: spooled to files, composed from them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from tests.webapi.conftest import WebapiServer, start
from tests.webapi.test_send import LATER_S, parse


async def test_large_uploads_compose_byte_exact_from_spooled_files(srv: WebapiServer) -> None:
    big = os.urandom(3 * 1000 * 1000 + 7)  # not a multiple of 3 or 57: tests the last line
    second = os.urandom(300 * 1024)
    req = {"To": [{"Address": "mox@localhost"}], "Text": "see attached", "FutureRelease": LATER_S}
    files = [
        ("attachedfile", ("big.bin", big, "application/octet-stream")),
        ("inlinefile", ("second.bin", second, "")),
    ]
    res = await srv.call("Send", req, files=files)
    entry, data = await srv.queued(res["Submissions"][0]["QueueMsgID"])
    mixed = list(parse(data).iter_parts())
    related = list(mixed[0].iter_parts())
    assert related[1].get_filename() == "second.bin" and related[1].get_content() == second
    assert related[1].get_content_type() == "application/octet-stream"
    assert mixed[1].get_filename() == "big.bin" and mixed[1].get_content() == big
    # Base64 lines of 76 characters, CRLF-terminated, as for small uploads.
    body = data.split(b"big.bin", 1)[1].split(b"\r\n\r\n", 1)[1]
    lines = body.split(b"\r\n")
    lines = lines[: lines.index(b"")]
    assert {len(line) for line in lines[:-1]} == {76} and 0 < len(lines[-1]) <= 76
    assert base64.b64decode(b"".join(lines)) == big
    # Nothing left behind in the temp directory.
    assert os.listdir(srv.ctx.store.files.tmp_dir) == []
    assert entry is not None


async def test_upload_refused_before_reading_it_all(tmp_path: Path) -> None:
    """The refusal comes as soon as the encoded upload passes the limit; nothing stays on disk."""

    def edit(text: str) -> str:
        return text.replace(
            "\t\tSMTP:\n\t\t\tEnabled: true\n", "\t\tSMTPMaxMessageSize: 1000000\n\t\tSMTP:\n\t\t\tEnabled: true\n", 1
        )

    async for srv in start(tmp_path, edit_mox=edit):
        # 760 KB encode to more than 1 MB: refused although the body is within
        # the bytes the form may have.
        code, msg = await srv.error(
            "Send", {"To": [{"Address": "mox@localhost"}], "Text": "x"},
            files=[("attachedfile", ("big.bin", b"\0" * 760_000, "application/octet-stream"))],
        )
        assert (code, msg) == ("messageTooLarge", "message too large")
        assert os.listdir(srv.ctx.store.files.tmp_dir) == []
        # Under the limit once encoded: accepted.
        await srv.call(
            "Send", {"To": [{"Address": "mox@localhost"}], "Text": "x", "FutureRelease": LATER_S},
            files=[("attachedfile", ("ok.bin", b"\0" * 700_000, "application/octet-stream"))],
        )
