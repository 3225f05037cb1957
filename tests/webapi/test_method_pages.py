"""Method pages show example JSON filled as mox fills its types (every field present)."""

from __future__ import annotations

import html
import json
from typing import Any

from tests.webapi.conftest import WebapiServer

NAME_ADDRESS = [{"Name": "", "Address": ""}]
ZERO_STRUCTURE = {
    "ContentType": "", "ContentTypeParams": None, "ContentID": "", "ContentDisposition": "",
    "Filename": "", "DecodedSize": 0, "Parts": None,
}
# mox's MessageGet example response (mox.FillExample of webapi.MessageGetResult).
MESSAGE_GET_RESULT = {
    "Message": {
        "From": NAME_ADDRESS, "To": NAME_ADDRESS, "CC": NAME_ADDRESS, "BCC": NAME_ADDRESS,
        "ReplyTo": NAME_ADDRESS, "MessageID": "", "References": [""], "Date": "0001-01-01T00:00:00Z",
        "Subject": "", "Text": "", "HTML": "",
    },
    "Structure": {
        "ContentType": "", "ContentTypeParams": {"example": ""}, "ContentID": "",
        "ContentDisposition": "", "Filename": "", "DecodedSize": 0, "Parts": [ZERO_STRUCTURE],
    },
    "Meta": {
        "Size": 0, "DSN": False, "Flags": [""], "MailFrom": "", "MailFromValidated": False,
        "RcptTo": "", "MsgFrom": "", "MsgFromValidated": False, "DKIMVerifiedDomains": [""],
        "RemoteIP": "", "MailboxName": "",
    },
}
FILE = [{"Name": "", "ContentType": "", "ContentID": "", "Data": ""}]
SEND_REQUEST = {
    **MESSAGE_GET_RESULT["Message"],
    "Extra": {"example": ""}, "Headers": [["", ""]], "AlternativeFiles": FILE, "InlineFiles": FILE,
    "AttachedFiles": FILE, "RequireTLS": False, "FutureRelease": "0001-01-01T00:00:00Z", "SaveSent": False,
}
SUPPRESSION = {
    "ID": 0, "Created": "0001-01-01T00:00:00Z", "Account": "", "BaseAddress": "", "OriginalAddress": "",
    "Manual": False, "Reason": "",
}


def _textarea(page: str, ident: str) -> str:
    raw = html.unescape(page.split(f'id="{ident}"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0])
    assert raw.endswith("}\n")  # Go's json.Encoder ends with a newline
    return raw


async def _examples(srv: WebapiServer, method: str) -> tuple[Any, Any]:
    page = (await srv.http.get(srv.v0 + method)).text
    request = json.loads(_textarea(page, "webapirequest"))
    response = json.loads(_textarea(page, "webapiresponse")) if 'id="webapiresponse"' in page else None
    return request, response


async def test_examples_list_every_field_as_mox(srv: WebapiServer) -> None:
    request, response = await _examples(srv, "MessageGet")
    assert request == {"MsgID": 0}
    assert response == MESSAGE_GET_RESULT
    # Key order is the types' declaration order, as in mox.
    assert list(response["Structure"]["Parts"][0]) == list(ZERO_STRUCTURE)
    request, response = await _examples(srv, "Send")
    assert request == SEND_REQUEST and list(request) == list(SEND_REQUEST)
    assert response == {"MessageID": "", "Submissions": [{"Address": "", "QueueMsgID": 0, "FromID": ""}]}
    request, response = await _examples(srv, "SuppressionList")
    assert (request, response) == ({}, {"Suppressions": [SUPPRESSION]})
    request, response = await _examples(srv, "MessagePartGet")
    assert (request, response) == ({"MsgID": 0, "PartPath": [0]}, None)
