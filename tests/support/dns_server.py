"""A small authoritative DNS server for tests, on loopback, built on dnspython.

    with DnsServer({
        "a.test": {"MX": [(10, "mx.a.test")], "TXT": ["v=spf1 ip4:127.0.0.2 -all"]},
        "mx.a.test": {"A": ["127.0.0.2"]},
        "sel._domainkey.a.test": {"TXT": ["v=DKIM1; k=rsa; p=" + key]},   # long: split in 255s
    }) as dns_server:
        resolver = DnsPythonResolver([dns_server.nameserver], timeout=2)
        dns_server.servfail("broken.a.test")        # that name answers SERVFAIL
        dns_server.drop("slow.a.test", "TXT")       # that query is never answered
        dns_server.set("a.test", "MX", [(5, "mx2.a.test")])   # change data while running

Serves UDP and TCP on the same port (any free one by default) from two daemon threads, so a
test and a Merpati subprocess can both use it. Data is a dict ``name → {TYPE: values}`` or
zone-file text (``DnsServer.from_zone_text``). Values: ``"A": ["127.0.0.2"]``,
``"MX": [(10, "mx.a.test")]`` or ``["10 mx.a.test"]``, ``"TXT": ["text"]`` (a long text is
split into 255-byte strings; a list of strings is one record), ``"CNAME"/"PTR"/"NS": names``,
other types as rdata text. Names are absolute. Zone apexes are ``zones=[...]`` if given, else
every top-most name of the data; negative answers carry the apex's SOA (synthetic unless
given); names outside every apex get REFUSED (a temporary error for a resolver).

Answers over UDP that exceed 512 bytes (or the client's EDNS size) are truncated (TC), so the
client retries over TCP, as with a real server.

As a subprocess: ``python tests/support/dns_server.py --zone-file Z --origin a.test
[--host 127.0.0.1] [--port N] [--servfail NAME]... [--drop NAME]...``; it prints
``READY <port>`` on stdout once serving (see :class:`DnsServerProcess`).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import dns.zone

__all__ = ["DnsServer", "DnsServerProcess"]

_IN = dns.rdataclass.IN
_MAX_CNAME = 8


def _name(text: str | dns.name.Name) -> dns.name.Name:
    if isinstance(text, dns.name.Name):
        return text
    return dns.name.from_text(text.rstrip(".") + ".")


def _rdatas(rdtype: str, values: Any) -> list[dns.rdata.Rdata]:
    rdtype = rdtype.upper()
    code = dns.rdatatype.from_text(rdtype)
    if isinstance(values, str | bytes) or (rdtype == "MX" and isinstance(values, tuple)):
        values = [values]
    out: list[dns.rdata.Rdata] = []
    for value in values:
        if isinstance(value, dns.rdata.Rdata):
            out.append(value)
        elif rdtype == "TXT":
            parts = list(value) if isinstance(value, list | tuple) else [value]
            strings: list[bytes] = []
            for part in parts:
                raw = part.encode() if isinstance(part, str) else bytes(part)
                if len(parts) > 1:
                    strings.append(raw)
                else:
                    strings.extend(raw[i : i + 255] for i in range(0, len(raw), 255) or [0])
            out.append(dns.rdtypes.ANY.TXT.TXT(_IN, code, strings or [b""]))
        elif rdtype == "MX" and isinstance(value, tuple):
            pref, host = value
            target = "." if host in ("", ".") else host.rstrip(".") + "."
            out.append(dns.rdata.from_text(_IN, code, f"{int(pref)} {target}", origin=dns.name.root, relativize=False))
        elif rdtype in ("CNAME", "PTR", "NS"):
            out.append(dns.rdata.from_text(_IN, code, value.rstrip(".") + ".", origin=dns.name.root, relativize=False))
        else:
            out.append(dns.rdata.from_text(_IN, code, str(value), origin=dns.name.root, relativize=False))
    return out


class DnsServer:
    """An authoritative server in this process. Not thread-safe for concurrent *mutation*
    from several threads, but mutation while serving (from the test's thread) is fine."""

    def __init__(
        self,
        records: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttl: int = 300,
        zones: Iterable[str] = (),
    ) -> None:
        if not host.startswith("127."):
            raise ValueError("tests serve DNS on loopback only")
        self.host = host
        self.requested_port = port
        self.ttl = ttl
        self.port = 0
        self._data: dict[dns.name.Name, dict[int, dns.rdataset.Rdataset]] = {}
        self._servfail: set[tuple[dns.name.Name, int | None]] = set()
        self._drop: set[tuple[dns.name.Name, int | None]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self.queries: list[tuple[str, str, str]] = []  # (name, TYPE, "udp"|"tcp")
        # explicit zone apexes (e.g. ["test", "in-addr.arpa"]): any name below one of them is
        # answered authoritatively (NXDOMAIN when unknown); without them, the top-most names
        # of the data are the apexes
        self.zones = [_name(z) for z in zones]
        for name, rrsets in (records or {}).items():
            for rdtype, values in rrsets.items():
                self.set(name, rdtype, values)
            if not rrsets:
                self._data.setdefault(_name(name), {})

    @classmethod
    def from_zone_text(cls, text: str, origin: str, **kwargs: Any) -> DnsServer:
        server = cls(**kwargs)
        server.load_zone_text(text, origin)
        return server

    # -- data ------------------------------------------------------------------------

    def load_zone_text(self, text: str, origin: str) -> None:
        zone = dns.zone.from_text(text, origin=_name(origin), relativize=False, check_origin=False)
        with self._lock:
            for name, node in zone.nodes.items():
                for rdataset in node.rdatasets:
                    self._data.setdefault(name, {})[rdataset.rdtype] = rdataset

    def set(self, name: str, rdtype: str, values: Any, *, ttl: int | None = None) -> None:
        """Replace the records of one type at ``name``."""
        rdataset = dns.rdataset.Rdataset(_IN, dns.rdatatype.from_text(rdtype.upper()))
        for rdata in _rdatas(rdtype, values):
            rdataset.add(rdata, self.ttl if ttl is None else ttl)
        with self._lock:
            self._data.setdefault(_name(name), {})[rdataset.rdtype] = rdataset

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self._lock:
            if rdtype is None:
                self._data.pop(_name(name), None)
            else:
                self._data.get(_name(name), {}).pop(dns.rdatatype.from_text(rdtype.upper()), None)

    def servfail(self, name: str, rdtype: str | None = None) -> None:
        """Answer SERVFAIL for ``name`` (one type, or every type)."""
        with self._lock:
            self._servfail.add(self._failure_key(name, rdtype))

    def drop(self, name: str, rdtype: str | None = None) -> None:
        """Never answer queries for ``name`` (one type, or every type): the client times out."""
        with self._lock:
            self._drop.add(self._failure_key(name, rdtype))

    def clear_failures(self) -> None:
        with self._lock:
            self._servfail.clear()
            self._drop.clear()

    @staticmethod
    def _failure_key(name: str, rdtype: str | None) -> tuple[dns.name.Name, int | None]:
        return (_name(name), dns.rdatatype.from_text(rdtype.upper()) if rdtype else None)

    @property
    def nameserver(self) -> str:
        """``"ip:port"``, the form ``[dns] nameservers`` and DnsPythonResolver take."""
        return f"{self.host}:{self.port}"

    # -- answering (pure: query message → response message or None) ---------------------

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.flags &= ~dns.flags.RA
        if query.opcode() != 0 or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != 0 else dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        with self._lock:
            if (qname, qtype) in self._drop or (qname, None) in self._drop:
                return None
            if (qname, qtype) in self._servfail or (qname, None) in self._servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            apex = self._apex(qname)
            if apex is None:
                response.set_rcode(dns.rcode.REFUSED)
                response.flags &= ~dns.flags.AA
                return response
            current = qname
            for _ in range(_MAX_CNAME):
                node = self._data.get(current)
                if node is None:
                    if not self._is_empty_non_terminal(current):
                        response.set_rcode(dns.rcode.NXDOMAIN)
                    response.authority.append(self._soa(self._apex(current) or apex))
                    return response
                rdataset = node.get(qtype)
                if rdataset is not None:
                    response.answer.append(self._rrset(current, rdataset))
                    return response
                cname = node.get(dns.rdatatype.CNAME)
                if cname is None or qtype == dns.rdatatype.CNAME:
                    response.authority.append(self._soa(apex))
                    return response
                response.answer.append(self._rrset(current, cname))
                current = cname[0].target
                if self._apex(current) is None:
                    return response  # out of our zones: the resolver follows it elsewhere
            response.set_rcode(dns.rcode.SERVFAIL)
            return response

    def _apex(self, name: dns.name.Name) -> dns.name.Name | None:
        if self.zones:
            matching = [z for z in self.zones if name.is_subdomain(z)]
            return max(matching, key=len) if matching else None
        best = None
        for candidate in self._data:
            if name.is_subdomain(candidate) and not any(
                candidate != other and candidate.is_subdomain(other) for other in self._data
            ):
                best = candidate
        return best

    def _is_empty_non_terminal(self, name: dns.name.Name) -> bool:
        return any(other != name and other.is_subdomain(name) for other in self._data)

    def _soa(self, apex: dns.name.Name) -> dns.rrset.RRset:
        node = self._data.get(apex, {})
        if dns.rdatatype.SOA in node:
            return self._rrset(apex, node[dns.rdatatype.SOA])
        rdata = dns.rdata.from_text(
            _IN, dns.rdatatype.SOA, f"ns.{apex} hostmaster.{apex} 1 3600 600 86400 60", origin=dns.name.root, relativize=False
        )
        rrset = dns.rrset.RRset(apex, _IN, dns.rdatatype.SOA)
        rrset.add(rdata, 60)
        return rrset

    @staticmethod
    def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
        rrset.update(rdataset)
        rrset.ttl = rdataset.ttl
        return rrset

    def _handle(self, wire: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None  # garbage: ignore it like a busy server would
        if query.question:
            question = query.question[0]
            self.queries.append(
                (question.name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(question.rdtype), transport)
            )
        try:
            response = self.answer(query)
        except Exception:  # a bug in the test server must not kill its thread
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
        if response is None:
            return None
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    # -- serving ---------------------------------------------------------------------

    def start(self) -> DnsServer:
        udp, tcp = self._bind()
        self._sockets = [udp, tcp]
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._serve_udp, args=(udp,), name="dns-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, args=(tcp,), name="dns-tcp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        last: OSError | None = None
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((self.host, self.requested_port))
                port = udp.getsockname()[1]
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, port))
                tcp.listen(16)
            except OSError as exc:
                udp.close()
                tcp.close()
                last = exc
                if self.requested_port:
                    break
                continue
            self.port = port
            return udp, tcp
        raise OSError(f"cannot bind DNS server on {self.host}:{self.requested_port}: {last}")

    def stop(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self._sockets = []

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.2)
                if not ready:
                    continue
                wire, peer = sock.recvfrom(65535)
            except (OSError, ValueError):
                return
            reply = self._handle(wire, "udp")
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.2)
                if not ready:
                    continue
                conn, _ = sock.accept()
            except (OSError, ValueError):
                return
            threading.Thread(target=self._serve_conn, args=(conn,), name="dns-tcp-conn", daemon=True).start()

    def _serve_conn(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            while not self._stop.is_set():
                try:
                    header = _recv_exact(conn, 2)
                    if header is None:
                        return
                    (length,) = struct.unpack("!H", header)
                    wire = _recv_exact(conn, length)
                    if wire is None:
                        return
                except OSError:
                    return
                reply = self._handle(wire, "tcp")
                if reply is None:
                    continue  # dropped: leave the client waiting
                try:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class DnsServerProcess:
    """The same server in a child process (for tests that must not share the GIL or that
    kill it). Failure switches are fixed at start (``servfail``/``drop`` name lists)."""

    def __init__(
        self,
        zone_text: str,
        origin: str,
        *,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        servfail: Iterable[str] = (),
        drop: Iterable[str] = (),
    ) -> None:
        self.zone_file = Path(workdir) / f"zone-{origin}.txt"
        self.zone_file.write_text(zone_text, encoding="utf-8")
        self.args = [sys.executable, str(Path(__file__).resolve()), "--zone-file", str(self.zone_file),
                     "--origin", origin, "--host", host, "--port", str(port)]
        for name in servfail:
            self.args += ["--servfail", name]
        for name in drop:
            self.args += ["--drop", name]
        self.host = host
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> DnsServerProcess:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 20)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"DNS server process did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> DnsServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone-file", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--servfail", action="append", default=[])
    parser.add_argument("--drop", action="append", default=[])
    args = parser.parse_args(argv)
    server = DnsServer.from_zone_text(
        Path(args.zone_file).read_text(encoding="utf-8"), args.origin, host=args.host, port=args.port
    )
    for name in args.servfail:
        server.servfail(name)
    for name in args.drop:
        server.drop(name)
    server.start()
    print(f"READY {server.port}", flush=True)
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if os.getppid() == 1:  # the test runner died: do not linger
                break
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
