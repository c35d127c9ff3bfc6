"""Site hooks (loading, stages, errors), sender authentication as a check, and building from config."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from merpati.config.schema import ChecksConfig, ClamavConfig, DnsblConfig, GreylistConfig, RspamdConfig, SenderAuthConfig
from merpati.delivery.checks import Action
from merpati.delivery.checks.build import ChecksConfigError, build_checks
from merpati.delivery.checks.context import CheckContext, Stage
from merpati.delivery.checks.hooks import HookError, load_hooks
from merpati.delivery.checks.pipeline import CheckPipeline, Policy
from merpati.delivery.checks.sender_auth import SenderAuthCheck
from merpati.delivery.envelope import ClientInfo, LocalRecipient
from merpati.resolver import FakeResolver

HOOK = textwrap.dedent('''
    from merpati.delivery.checks import add_score, reject, add_headers
    NAME = "site"

    async def on_rcpt(ctx):
        if ctx.recipient.startswith("old-list@"):
            return reject("This list has moved", 550, "5.1.6")

    async def on_data(ctx):
        if "invoice" in (ctx.header("Subject") or "").lower() and not ctx.tls:
            return [add_score(3.0, "invoice over plaintext"), add_headers(("X-Site", "invoice"))]
''')


def test_hook_module_from_a_path(tmp_path) -> None:
    path = tmp_path / "hooks.py"
    path.write_text(HOOK)
    hook = load_hooks(str(path))
    assert hook.name == "site" and hasattr(hook, "on_rcpt") and not hasattr(hook, "on_connect")


@pytest.mark.parametrize("source,error", [
    ("def on_rcpt(ctx):\n    return None\n", "async"),
    ("X = 1\n", "defines none"),
    ("raise RuntimeError('boom')\n", "failed to load"),
])
def test_bad_hook_modules(tmp_path, source: str, error: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(HookError, match=error):
        load_hooks(str(path))
    with pytest.raises(HookError):
        load_hooks(str(tmp_path / "missing.py"))
    with pytest.raises(HookError):
        load_hooks("no_such_module_here.anywhere")


async def test_hooks_in_the_pipeline(tmp_path) -> None:
    path = tmp_path / "hooks.py"
    path.write_text(HOOK)
    p = CheckPipeline([load_hooks(str(path))], Policy(hostname="mx.ours.test"))
    s = p.session(ClientInfo("192.0.2.1", 1))
    await s.hello(ClientInfo("192.0.2.1", 1, "c.example", True))
    await s.mail("a@example.org")
    refusal = await s.rcpt("old-list@ours.test", [])
    assert refusal is not None and (refusal.code, refusal.enhanced) == (550, "5.1.6")
    rcpt = LocalRecipient(1, "bob@ours.test", "bob@ours.test")
    assert await s.rcpt("bob@ours.test", [rcpt]) is None
    out = await s.data(b"From: a@example.org\r\nSubject: Your invoice\r\n\r\npay\r\n", [rcpt])
    head = out.filings[1].headers.decode()
    assert "X-Site: invoice\r\n" in head and "site=+3.00 (invoice over plaintext)" in head


DNS = {
    "a.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]},
    "_dmarc.a.test": {"TXT": ["v=DMARC1; p=reject"]},
    "q.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]},
    "_dmarc.q.test": {"TXT": ["v=DMARC1; p=quarantine"]},
    "nodmarc.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]},
}


def auth_ctx(ip: str, sender: str, message: bytes) -> CheckContext:
    return CheckContext(stage=Stage.DATA, client=ClientInfo(ip, 1, "c.example"), hostname="mx.ours.test",
                        helo="c.example", sender=sender, message=message)


async def test_dmarc_reject_quarantine_and_pass() -> None:
    check = SenderAuthCheck(FakeResolver(DNS))
    forged = b"From: boss@a.test\r\nSubject: pay\r\n\r\nx\r\n"
    out = await check.on_data(auth_ctx("198.51.100.1", "boss@a.test", forged))
    assert out[-1].action is Action.REJECT and (out[-1].code, out[-1].enhanced) == (550, "5.7.1")
    out = await check.on_data(auth_ctx("198.51.100.1", "x@q.test", b"From: x@q.test\r\n\r\nx\r\n"))
    assert any(r.action is Action.QUARANTINE for r in out)
    c = auth_ctx("192.0.2.10", "boss@a.test", forged)
    out = await check.on_data(c)
    header = dict(h for r in out for h in r.headers)["Authentication-Results"]
    assert header.startswith("mx.ours.test;") and "spf=pass" in header and "dmarc=pass" in header
    assert all(r.action is Action.NONE for r in out)


@pytest.mark.parametrize("policy,expected", [("none", Action.NONE), ("junk", Action.QUARANTINE), ("reject", Action.REJECT)])
async def test_spf_fail_without_dmarc_follows_configuration(policy: str, expected: Action) -> None:
    check = SenderAuthCheck(FakeResolver(DNS), spf_fail=policy)
    out = await check.on_data(auth_ctx("198.51.100.1", "x@nodmarc.test", b"From: x@nodmarc.test\r\n\r\nx\r\n"))
    decisive = [r for r in out if r.action is not Action.NONE]
    assert (decisive[0].action if decisive else Action.NONE) is expected
    if expected is Action.REJECT:
        assert decisive[0].enhanced == "5.7.23"


async def test_dns_trouble_is_temporary_never_permanent() -> None:
    check = SenderAuthCheck(FakeResolver(DNS, servfail={"_dmarc.a.test", "a.test"}))
    out = await check.on_data(auth_ctx("198.51.100.1", "boss@a.test", b"From: boss@a.test\r\n\r\nx\r\n"))
    assert out[-1].action is Action.TEMPFAIL and out[-1].code == 451


async def test_forged_authentication_results_are_removed() -> None:
    check = SenderAuthCheck(FakeResolver(DNS))
    message = (b"Authentication-Results: mx.ours.test; dmarc=pass header.from=a.test\r\n"
               b"Authentication-Results: other.example; spf=pass\r\nFrom: x@nodmarc.test\r\n\r\nbody\r\n")
    c = auth_ctx("192.0.2.10", "x@nodmarc.test", message)
    await check.on_data(c)
    rewritten = c.transaction["rewritten_message"]
    assert b"mx.ours.test; dmarc=pass" not in rewritten and b"other.example; spf=pass" in rewritten
    assert rewritten.endswith(b"\r\n\r\nbody\r\n")


def config(**kw) -> ChecksConfig:
    return dataclasses.replace(ChecksConfig(), **kw)


def test_build_from_config(tmp_path) -> None:
    class NoStore:
        pass

    built = build_checks(config(bayes=False), hostname="mx.ours.test", resolver=FakeResolver(), store=NoStore())
    names = [c.name for c in built.pipeline.checks]
    assert names == ["pregreet", "helo", "iprev", "auth"] and built.pregreet_wait == 0.0
    assert build_checks(config(enabled=False), hostname="h", resolver=None, store=None).pipeline is None
    full = config(bayes=False, dnsbl=DnsblConfig(zones=("bl.test",)), rspamd=RspamdConfig(url="http://127.0.0.1:11333"),
                  clamav=ClamavConfig(address="/run/clamd.sock"), sender_auth=SenderAuthConfig(enabled=False))
    names = [c.name for c in build_checks(full, hostname="h", resolver=FakeResolver(), store=None).pipeline.checks]
    assert names == ["pregreet", "helo", "iprev", "dnsbl", "rspamd", "clamav"]
    for bad, key in [
        (config(on_failure="maybe"), "checks.on_failure"),
        (config(junk_score=20.0), "checks.junk_score"),
        (config(bayes=False, dnsbl=DnsblConfig(zones=("bad",))), "checks.dnsbl.zones"),
        (config(bayes=False, rspamd=RspamdConfig(url="https://x")), "checks.rspamd.url"),
        (config(bayes=False, clamav=ClamavConfig(address="nohost")), "checks.clamav.address"),
        (config(bayes=False, hooks=str(tmp_path / "none.py")), "checks.hooks"),
        (config(bayes=False, sender_auth=SenderAuthConfig(spf_fail="always")), "checks.sender_auth.spf_fail"),
        (config(bayes=False, pregreet_wait=-1.0), "checks.pregreet_wait"),
        (config(bayes=False, greylist=GreylistConfig(enabled=True, delay="soon")), "checks.greylist.delay"),
    ]:
        with pytest.raises(ChecksConfigError, match=key):
            build_checks(bad, hostname="h", resolver=FakeResolver(), store=_sqlite_like())


class _sqlite_like:  # noqa: N801 - a stand-in for a store whose module says it is SQLite
    __module__ = "merpati.storage.sqlite.store"

    async def _read(self, *a):  # pragma: no cover - never called here
        raise AssertionError

    _write = _read
