"""rspamd and clamd clients against small fake servers on loopback: protocol, mapping, failures."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

from merpati.delivery.checks import Action, CheckUnavailable
from merpati.delivery.checks.clamav import ClamavCheck, parse_address
from merpati.delivery.checks.context import CheckContext, Stage
from merpati.delivery.checks.iprev import IprevResult
from merpati.delivery.checks.rspamd import RspamdCheck, interpret
from merpati.delivery.envelope import ClientInfo

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def data_ctx() -> CheckContext:
    c = CheckContext(stage=Stage.DATA, client=ClientInfo("192.0.2.5", 1), hostname="mx.ours.test",
                     helo="client.example", sender="a@example.org", recipients=("bob@ours.test", "x\r\nEvil: 1@ours.test"),
                     message=MSG)
    c.session["iprev"] = IprevResult("pass", "client.example")
    return c


class FakeHttp:
    def __init__(self, reply: bytes | None, *, delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.requests: list[bytes] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        await asyncio.sleep(self.delay)
        if self.reply is not None:
            writer.write(self.reply)
            await writer.drain()
        writer.close()


def http_reply(body: bytes, *, chunked: bool = False, status: str = "200 OK") -> bytes:
    if chunked:
        return (f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
                + b"0\r\n\r\n")
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


GTUBE = {"is_skipped": True, "score": 15.0, "required_score": 15.0, "action": "reject",
         "symbols": {"GTUBE": {"name": "GTUBE", "score": 0.0}}, "messages": {"smtp_message": "Gtube pattern"}}


@pytest.mark.parametrize("chunked", [False, True])
async def test_rspamd_request_and_reject_mapping(chunked: bool) -> None:
    fake = FakeHttp(http_reply(json.dumps(GTUBE).encode(), chunked=chunked))
    async with fake as url:
        results = await RspamdCheck(url, timeout=5, password="s3cret").on_data(data_ctx())
    request = fake.requests[0]
    assert request.startswith(b"POST /checkv2 HTTP/1.1\r\n") and request.endswith(MSG)
    for header in (b"IP: 192.0.2.5", b"Helo: client.example", b"From: a@example.org", b"Rcpt: bob@ours.test",
                   b"Hostname: client.example", b"Password: s3cret"):
        assert header + b"\r\n" in request
    assert b"\r\nEvil: 1" not in request  # envelope text cannot add request headers
    assert results[0].action is Action.REJECT and results[0].code == 554 and "Gtube pattern" in results[0].text


@pytest.mark.parametrize("action,expected", [
    ("no action", Action.NONE), ("greylist", Action.NONE), ("add header", Action.QUARANTINE),
    ("rewrite subject", Action.QUARANTINE), ("soft reject", Action.TEMPFAIL), ("reject", Action.REJECT),
])
def test_rspamd_actions(action: str, expected: Action) -> None:
    results = interpret({"action": action, "score": 7.5, "symbols": {"A": {"score": 5.0}, "B": {"score": 2.5}}})
    assert results[0].action is expected
    assert results[-1].score == 7.5 and "A +5.0" in results[-1].reason and "B +2.5" in results[-1].reason


@pytest.mark.parametrize("bad", [None, [], {"score": 1}, {"action": "reject", "score": "x"}, {"action": "x", "score": 1e300}])
def test_rspamd_garbage_is_unavailable(bad) -> None:
    with pytest.raises(CheckUnavailable):
        interpret(bad)


@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", http_reply(b"{not json"), http_reply(b"{}", status="500 Oops"), None,
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"])
async def test_rspamd_bad_answers_are_unavailable(reply) -> None:
    async with FakeHttp(reply) as url:
        with pytest.raises(CheckUnavailable):
            await RspamdCheck(url, timeout=5).on_data(data_ctx())


async def test_rspamd_timeout_and_refused() -> None:
    async with FakeHttp(http_reply(b"{}"), delay=5) as url:
        with pytest.raises(CheckUnavailable, match="no answer"):
            await RspamdCheck(url, timeout=0.2).on_data(data_ctx())
    async with FakeHttp(None) as url:
        pass  # closed: nothing listens there now
    with pytest.raises(CheckUnavailable):
        await RspamdCheck(url, timeout=2).on_data(data_ctx())


class FakeClamd:
    def __init__(self, answer: bytes | None, *, path: str | None = None, delay: float = 0.0) -> None:
        self.answer, self.path, self.delay = answer, path, delay
        self.streams: list[bytes] = []

    async def __aenter__(self) -> str:
        if self.path:
            self.server = await asyncio.start_unix_server(self._serve, self.path)
            return self.path
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        assert await reader.readexactly(10) == b"zINSTREAM\0"
        data = bytearray()
        while True:
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            if size == 0:
                break
            data += await reader.readexactly(size)
        self.streams.append(bytes(data))
        await asyncio.sleep(self.delay)
        if self.answer is not None:
            writer.write(self.answer)
        writer.close()


async def test_clamd_clean_infected_and_error(tmp_path) -> None:
    big = MSG + b"x" * 200_000
    async with FakeClamd(b"stream: OK\0") as address:
        check = ClamavCheck(address, timeout=5)
        assert await check.scan(big) is None
    async with FakeClamd(b"stream: Eicar-Test-Signature FOUND\0", path=str(tmp_path / "clamd.sock")) as path:
        c = data_ctx()
        result = await ClamavCheck(path, timeout=5).on_data(c)
        assert result is not None and (result.code, result.enhanced) == (554, "5.7.1")
        assert "Eicar-Test-Signature" in result.text
    async with FakeClamd(b"INSTREAM size limit exceeded. ERROR\0") as address:
        with pytest.raises(CheckUnavailable, match="size limit"):
            await ClamavCheck(address, timeout=5).scan(MSG)
    async with FakeClamd(None) as address:
        with pytest.raises(CheckUnavailable):
            await ClamavCheck(address, timeout=5).scan(MSG)
    async with FakeClamd(b"stream: OK\0", delay=5) as address:
        with pytest.raises(CheckUnavailable, match="no answer"):
            await ClamavCheck(address, timeout=0.2).scan(MSG)
    with pytest.raises(CheckUnavailable):
        await ClamavCheck(str(tmp_path / "nothing.sock"), timeout=1).scan(MSG)


def test_clamd_addresses() -> None:
    assert parse_address("127.0.0.1:3310") == ("127.0.0.1", 3310)
    assert parse_address("[::1]:3310") == ("::1", 3310)
    assert parse_address("/run/clamav/clamd.ctl") == "/run/clamav/clamd.ctl"
    for bad in ("nohost", "host:", "host:99999", ":3310"):
        with pytest.raises(ValueError):
            parse_address(bad)
