"""HTML pages: the method index (``v0/``) and a form page per method, as mox serves them.

The example request/response JSON on a method page is generated from the
same dataclasses the server decodes with, filled as mox fills its Go types:
the zero value, with every list holding one filled element, every map one
``"example"`` entry, every pointer present; pretty-printed with a tab indent
in declaration order. A type that contains itself (``Structure.Parts``)
holds its zero value at the second level, so the example stays finite.
"""

from __future__ import annotations

import dataclasses
import html
import json
import typing
from datetime import UTC, datetime
from functools import cache
from typing import Any

from core.version import VERSION
from plugins.webapi.jsoncodec import format_time, optional_inner, type_hints
from plugins.webapi.types import METHODS

DOC_URL = "https://pkg.go.dev/github.com/mjl-/mox/webapi/"


def zero_value(tp: Any) -> Any:
    """The Go zero value of ``tp`` as JSON data: nil slices, maps and pointers are null."""
    if optional_inner(tp) is not None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = type_hints(tp)
        return {f.name: zero_value(hints[f.name]) for f in dataclasses.fields(tp)}
    if tp is bool:
        return False
    if tp is int:
        return 0
    if tp is str:
        return ""
    if tp is datetime:
        return format_time(datetime.min.replace(tzinfo=UTC))
    if typing.get_origin(tp) is tuple:
        return [zero_value(a) for a in typing.get_args(tp)]
    return None


def example_value(tp: Any, stack: tuple[Any, ...] = ()) -> Any:
    """The example value of ``tp`` as mox fills it (Go's ``mox.FillExample``).

    Lists get one filled element, maps one ``"example"`` entry, pointers a
    filled value. A type already being filled further up is left at its zero
    value, so ``Structure.Parts`` holds one zero Structure (whose own
    ``Parts`` and ``ContentTypeParams`` are null), exactly as in mox.
    """
    if tp in stack:
        return zero_value(tp)
    stack = (*stack, tp)
    inner = optional_inner(tp)
    if inner is not None:
        return example_value(inner, stack)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = type_hints(tp)
        return {f.name: example_value(hints[f.name], stack) for f in dataclasses.fields(tp)}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        return [example_value(args[0], stack)]
    if origin is dict:
        return {"example": example_value(args[1], stack)}
    # Go arrays (pairs), numbers, strings, booleans and times stay zero.
    return zero_value(tp)


def example_json(tp: type) -> str:
    """Pretty-printed as Go's json.Encoder with a tab indent writes it (trailing newline)."""
    return json.dumps(example_value(tp), indent="\t", ensure_ascii=False) + "\n"


@cache
def index_page() -> str:
    items = "\n".join(f'\t\t\t<li><a href="{m}">{m}</a></li>' for m in METHODS)
    return f"""<!doctype html>
<html>
	<head>
		<meta charset="utf-8" />
		<title>Webapi - Mox</title>
		<style>
body, html {{ padding: 1em; font-size: 16px; }}
* {{ font-size: inherit; font-family: ubuntu, lato, sans-serif; margin: 0; padding: 0; box-sizing: border-box; }}
h1, h2, h3, h4 {{ margin-bottom: 1ex; }}
h1 {{ font-size: 1.2rem; }}
p {{ margin-bottom: 1ex; }}
ul {{ padding-left: 1em; }}
		</style>
	</head>
	<body>
		<h1>Webapi and webhooks</h1>
		<p>The webapi is a simple HTTP/JSON-based API for sending messages and processing incoming messages.</p>
		<p>Configure webhooks in the account web interface to receive events about outgoing deliveries and incoming messages.</p>
		<p>Documentation and examples: <a href="{html.escape(DOC_URL)}">{html.escape(DOC_URL)}</a>; machine-readable description: <a href="openapi.json">openapi.json</a>.</p>
		<p>This server: moxtrio {html.escape(VERSION)}.</p>
		<h2>Methods</h2>
		<ul>
{items}
		</ul>
	</body>
</html>
"""


@cache
def method_page(name: str) -> str:
    m = METHODS[name]
    request = html.escape(example_json(m.request))
    if m.result is None:
        response = "<p>Method has a non-JSON response.</p>"
        raw = "true"
    else:
        response = (
            '<h2>Response</h2>\n\t\t<textarea id="webapiresponse" rows="20" cols="80">'
            + html.escape(example_json(m.result))
            + "</textarea>"
        )
        raw = "false"
    return f"""<!doctype html>
<html>
	<head>
		<meta charset="utf-8" />
		<title>Method {name} - WebAPI - Mox</title>
		<style>
body, html {{ padding: 1em; font-size: 16px; }}
* {{ font-size: inherit; font-family: ubuntu, lato, sans-serif; margin: 0; padding: 0; box-sizing: border-box; }}
h1, h2, h3, h4 {{ margin-bottom: 1ex; }}
h1 {{ font-size: 1.2rem; }}
textarea {{ font-family: monospace; width: 100%; }}
		</style>
	</head>
	<body>
		<h1><a href="../">WebAPI</a> - {name}</h1>
		<p>{html.escape(m.doc)}</p>
		<form id="webapicall" method="POST">
			<h2>Request</h2>
			<textarea id="webapirequest" name="request" rows="20" cols="80">{request}</textarea>
			<div><button type="reset">Reset</button> <button type="submit">Call</button></div>
		</form>
		{response}
		<script>
const rawResponse = {raw};
document.getElementById('webapicall').addEventListener('submit', async (e) => {{
	const req = document.getElementById('webapirequest').value;
	try {{
		if (!req) {{ throw new Error('empty request'); }}
		JSON.parse(req);
	}} catch (err) {{
		window.alert('Error parsing request: ' + err.message);
		e.preventDefault();
		return;
	}}
	if (rawResponse) {{
		return;
	}}
	e.preventDefault();
	const fd = new FormData();
	fd.append('request', req);
	const out = document.getElementById('webapiresponse');
	try {{
		const resp = await fetch({json.dumps(name)}, {{method: 'POST', body: fd}});
		const text = await resp.text();
		try {{
			out.value = JSON.stringify(JSON.parse(text), undefined, '\\t');
		}} catch (err) {{
			out.value = text;
		}}
	}} catch (err) {{
		window.alert('Error calling method: ' + err.message);
	}}
}});
		</script>
	</body>
</html>
"""
