"""Extra metadata from ``X-Mox-Extra-<Key>`` headers of submitted messages.

mox lets an application that submits over SMTP attach metadata that comes
back in every webhook for the message. Header names are canonicalised
MIME-style (``x-mox-extra-ORDER-ref`` -> key ``Order-Ref``); two headers that
canonicalise to the same key refuse the submission; the headers stay in the
message.
"""

from __future__ import annotations

from moxtrio import PluginContext, Rejection, Submission, hookimpl

PREFIX = "X-Mox-Extra-"

# RFC 7230 token characters: names outside this set are not canonicalised,
# as Go's textproto.CanonicalMIMEHeaderKey leaves them alone.
_TOKEN = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header_name(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: ``x-mox-extra-user-id`` -> ``X-Mox-Extra-User-Id``."""
    if not name or any(c not in _TOKEN for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


def extra_from_headers(headers: list[tuple[str, str]]) -> dict[str, str] | Rejection:
    """The Extra map for a message's headers, or the rejection for a duplicate."""
    extra: dict[str, str] = {}
    for name, value in headers:
        canonical = canonical_header_name(name)
        if not canonical.startswith(PREFIX):
            continue
        key = canonical[len(PREFIX) :]
        if key in extra:
            return Rejection(554, "5.6.0", f'duplicate x-mox-extra- key "{key}"')
        extra[key] = " ".join(value.replace("\r\n", "\n").split("\n")).strip()
    return extra


@hookimpl
def moxtrio_submission(ctx: PluginContext, submission: Submission) -> Rejection | None:
    # Only SMTP submissions carry Extra in headers; webapi Send has its own
    # JSON Extra field, which the webapi copies as is.
    if submission.source != "smtp":
        return None
    result = extra_from_headers(submission.headers)
    if isinstance(result, Rejection):
        return result
    submission.extra.update(result)
    return None
