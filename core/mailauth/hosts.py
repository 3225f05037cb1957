"""The local hosts file, consulted before DNS for the reverse/forward (iprev) check.

mox's resolver (Go's) reads /etc/hosts before asking DNS, so mail from
127.0.0.1 gets ``iprev=pass`` with the name ``localhost``; dnspython never
reads the hosts file. The file is read once, off the trio thread.
"""

from __future__ import annotations

import ipaddress

import trio

HOSTS_FILE = "/etc/hosts"

_cache: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]] = {}


def parse_hosts(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(names by IP, IPs by lower-case name) from hosts-file text."""
    by_ip: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            ip = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            by_ip.setdefault(ip, []).append(name.lower().rstrip("."))
            by_name.setdefault(name.lower().rstrip("."), []).append(ip)
    return by_ip, by_name


async def hosts(path: str = HOSTS_FILE) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The parsed hosts file (empty when unreadable), cached per path."""
    if path not in _cache:
        try:
            text = await trio.Path(path).read_text(errors="replace")
        except OSError:
            text = ""
        _cache[path] = parse_hosts(text)
    return _cache[path]
