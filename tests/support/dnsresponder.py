"""A tiny authoritative DNS responder on loopback, for tests.

Why: the brief allows no mocks except DNS, and no network. This responder
answers real DNS queries over UDP and TCP on 127.0.0.1 (ephemeral port) from a
dict of records, so ``core.dns.Resolver(nameservers=[...], port=...)`` runs its
real code path (including TCP fallback on truncation).

It runs in a daemon thread (select loop), so it works the same from sync and
trio tests and is independent of the test's event loop.

Records: ``{"example.org": {"MX": ["10 mx1.example.org.", "0 ."], "A":
["127.0.0.5"], "AAAA": [...], "TXT": ['"v=spf1 -all"'], "CNAME":
["other.example."]}}``; names are case-insensitive, with or without trailing
dot; values are zone-file rdata text. Unknown names get NXDOMAIN, known names
without the type get NOERROR/NODATA, both with an SOA (TTL ``ttl``) in the
authority section as real servers send.

Modes: ``"normal"``; ``"silent"`` (never answers: timeout tests);
``"servfail"`` (every query gets SERVFAIL). ``servfail_names`` makes only some
names fail, ``servfail_rr`` only some (name, type) pairs (e.g. an SPF TXT
lookup while the name's A records answer). ``truncate_udp=True`` sets TC on every UDP answer (forces TCP).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["DNSResponder", "dns_responder_factory"]

Records = dict[str, dict[str, list[str]]]


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".") + "."


class DNSResponder:
    """Authoritative responder for a fixed record set; see module docstring."""

    def __init__(
        self,
        records: Records | None = None,
        *,
        host: str = "127.0.0.1",
        mode: str = "normal",
        servfail_names: list[str] | None = None,
        servfail_rr: list[tuple[str, str]] | None = None,
        truncate_udp: bool = False,
        ttl: int = 60,
    ) -> None:
        if mode not in ("normal", "silent", "servfail"):
            raise ValueError(f"unknown mode {mode!r}")
        self.host = host
        self.mode = mode
        self.truncate_udp = truncate_udp
        self.ttl = ttl
        self.servfail_names = {_norm(n) for n in servfail_names or []}
        self.servfail_rr = {(_norm(n), t.upper()) for n, t in servfail_rr or []}
        self._records: dict[str, dict[str, list[str]]] = {}
        self.set_records(records or {})
        self.queries: list[tuple[str, str, str]] = []  # (name, type, "udp"/"tcp")
        self.port = 0
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- configuration -------------------------------------------------------

    def set_records(self, records: Records) -> None:
        """Replace the served records (thread-safe enough for tests: one dict swap)."""
        self._records = {
            _norm(name): {t.upper(): list(v) for t, v in types.items()}
            for name, types in records.items()
        }

    @property
    def nameservers(self) -> list[str]:
        return [self.host]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> DNSResponder:
        """Bind UDP and TCP on the same ephemeral port and start serving."""
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("could not bind udp+tcp on the same port")
        self._thread = threading.Thread(target=self._serve, name="dnsresponder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def __enter__(self) -> DNSResponder:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        sel = selectors.DefaultSelector()
        sel.register(self._udp, selectors.EVENT_READ, "udp")
        sel.register(self._tcp, selectors.EVENT_READ, "tcp")
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    try:
                        if key.data == "udp":
                            self._handle_udp()
                        else:
                            self._handle_tcp()
                    except OSError:
                        pass
        finally:
            sel.close()

    def _handle_udp(self) -> None:
        assert self._udp is not None
        wire, addr = self._udp.recvfrom(65535)
        reply = self._answer(wire, "udp")
        if reply is not None:
            self._udp.sendto(reply, addr)

    def _handle_tcp(self) -> None:
        assert self._tcp is not None
        conn, _ = self._tcp.accept()
        with conn:
            conn.settimeout(2)
            # Serve queries on this connection until the client closes it.
            for _ in range(16):
                hdr = _recv_exact(conn, 2)
                if hdr is None:
                    return
                (n,) = struct.unpack("!H", hdr)
                wire = _recv_exact(conn, n)
                if wire is None:
                    return
                reply = self._answer(wire, "tcp")
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def _answer(self, wire: bytes, proto: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if not query.question:
            return None
        q = query.question[0]
        qname = q.name.to_text().lower()
        qtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.queries.append((qname, qtype, proto))
        if self.mode == "silent":
            return None
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        if self.mode == "servfail" or qname in self.servfail_names or (qname, qtype) in self.servfail_rr:
            resp.set_rcode(dns.rcode.SERVFAIL)
            return resp.to_wire()
        if proto == "udp" and self.truncate_udp:
            resp.flags |= dns.flags.TC
            return resp.to_wire()

        name = qname
        for _ in range(8):  # follow CNAMEs within our data, bounded
            types = self._records.get(name)
            if types is None:
                if name == qname:
                    resp.set_rcode(dns.rcode.NXDOMAIN)
                self._negative(resp, name)
                return resp.to_wire()
            if qtype != "CNAME" and "CNAME" in types:
                target = _norm(types["CNAME"][0])
                resp.answer.append(self._rrset(name, "CNAME", [target]))
                name = target
                continue
            values = types.get(qtype)
            if values:
                resp.answer.append(self._rrset(name, qtype, values))
            else:
                self._negative(resp, name)
            return resp.to_wire()
        return resp.to_wire()

    def _negative(self, resp: dns.message.Message, name: str) -> None:
        """An SOA in the authority section of NXDOMAIN/NODATA answers, as real servers send
        (RFC 2308: resolvers may keep the negative answer for the SOA minimum)."""
        zone = name.split(".", 1)[1] if name.count(".") > 1 else name
        resp.authority.append(self._rrset(
            zone, "SOA", [f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 {self.ttl}"]))

    def _rrset(self, name: str, rdtype: str, values: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(
            dns.name.from_text(name), self.ttl, dns.rdataclass.IN, rdtype, values
        )


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = conn.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


@contextlib.contextmanager
def dns_responder_factory() -> Iterator[Any]:
    """Yield a function ``make(records, **kw) -> started DNSResponder``; all
    responders made are stopped at exit. Wrap it in a pytest fixture:

        @pytest.fixture
        def dns_responder():
            with dns_responder_factory() as make:
                yield make
    """
    started: list[DNSResponder] = []

    def make(records: Records | None = None, **kw: Any) -> DNSResponder:
        r = DNSResponder(records, **kw).start()
        started.append(r)
        return r

    try:
        yield make
    finally:
        for r in started:
            r.stop()
