"""rspamd integration against a real rspamd (Debian's) started privately by this module.

The instance has its own config, database, run and log folders under a temporary folder, its
own loopback port, and its DNS pointed at a dead loopback port (127.0.0.1:9): nothing it does
leaves loopback. Modules that only make sense with the network (RBLs, fuzzy, SPF/DKIM/DMARC,
which Merpati does itself, reputation, Redis-backed ones) are disabled. It needs ~10-20 s to
start: one instance per test process (xdist worker), shared by the tests of this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from support.dns_server import DnsServer
from support.merpati_server import MerpatiServer
from support.messages import make_message, split_trace
from support.net import free_port, worker_address

pytestmark = pytest.mark.interop

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SENDER = "someone@elsewhere.test"
DISABLED = (
    "fuzzy_check rbl surbl spf dkim dmarc arc asn phishing url_reputation neural ratelimit greylist "
    "replies reputation dcc emails mx_check rspamd_update history_redis bimi clickhouse elastic "
    "metadata_exporter metric_exporter p0f spamtrap external_services antivirus"
).split()


class Rspamd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> None:
        local = self.root / "local"
        for sub in ("local/override.d", "local/local.d", "db", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for module in DISABLED:
            (local / "override.d" / f"{module}.conf").write_text("enabled = false;\n")
        (self.root / "rspamd.conf").write_text(
            '.include "$CONFDIR/common.conf"\n'
            "options {\n"
            '    pidfile = "$RUNDIR/rspamd.pid";\n'
            '    .include "$CONFDIR/options.inc"\n'
            '    dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }\n'
            '    filters = "chartable,regexp";\n'
            '    rrd = "";\n'
            "}\n"
            'logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "notice"; }\n'
            'worker "normal" {\n'
            f'    bind_socket = "127.0.0.1:{self.port}";\n'
            "    count = 1;\n"
            '    .include "$CONFDIR/worker-normal.inc"\n'
            "}\n"
        )
        cmd = [RSPAMD, "-f", "-c", str(self.root / "rspamd.conf"),
               "--var", "CONFDIR=/etc/rspamd", "--var", f"LOCAL_CONFDIR={local}",
               "--var", f"DBDIR={self.root / 'db'}", "--var", f"RUNDIR={self.root / 'run'}",
               "--var", f"LOGDIR={self.root / 'log'}"]
        if os.geteuid() == 0:
            cmd += ["-u", "root", "-g", "root", "--insecure"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.root / "stdout.log", "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rspamd exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:  # noqa: S310 - loopback
                    if r.read().strip() == b"pong":
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"rspamd did not answer within {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        out = []
        for name in ("stdout.log", "log/rspamd.log"):
            try:
                out.append((self.root / name).read_text(errors="replace")[-2000:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="session")
def rspamd(tmp_path_factory):
    daemon = Rspamd(tmp_path_factory.mktemp("rspamd"))
    daemon.start()
    yield daemon
    daemon.stop()


def reverse(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


CLIENT = worker_address(31)


@pytest.fixture(scope="module")
def dns():
    records = {"test": {}, reverse(CLIENT): {"PTR": ["client.elsewhere.test"]},
               "client.elsewhere.test": {"A": [CLIENT]}}
    with DnsServer(records, zones=["test", "in-addr.arpa"]) as server:
        yield server


def server_with(root: Path, dns, checks: str, host_role: int) -> MerpatiServer:
    s = MerpatiServer(root, host=worker_address(host_role), dns=dns.nameserver, extra_config=checks)
    s.add_domain("merpati.test")
    s.start()
    return s


@pytest.fixture(scope="module")
def server(tmp_path_factory, rspamd, dns):
    s = server_with(tmp_path_factory.mktemp("mx-rspamd"), dns,
                    f'[checks]\n[checks.rspamd]\nurl = "{rspamd.url}"\ntimeout = 20\n', 2)
    yield s
    s.stop()


def smtp(server) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname="client.elsewhere.test", timeout=30,
                        source_address=(CLIENT, 0))


def test_gtube_is_rejected_by_rspamd(server) -> None:
    rcpt = server.new_user("gtube")
    msg = make_message(sender=SENDER, to=rcpt, subject="test", body=b"Hello\r\n" + GTUBE + b"\r\n")
    with smtp(server) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail(SENDER, [rcpt], msg)
    assert err.value.smtp_code == 554 and b"5.7.1" in err.value.smtp_error
    assert server.export(rcpt) == [] and server.export(rcpt, mailbox="Junk") == []


def test_ordinary_mail_passes_with_rspamds_verdict_explained(server) -> None:
    rcpt = server.new_user("ham")
    msg = make_message(sender=SENDER, to=rcpt, subject="Lunch on Thursday")
    with smtp(server) as c:
        assert c.sendmail(SENDER, [rcpt], msg) == {}
    [stored] = server.export(rcpt)
    parts = split_trace(stored)
    assert parts.original == msg
    verdict = parts.checks["merpati-verdict"]
    assert verdict.startswith(b" inbox;") and b"rspamd=" in verdict and b"action no action" in verdict


def test_rspamd_down_tempfails_by_default_or_accepts_with_a_note(tmp_path, rspamd, dns) -> None:
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    strict = server_with(tmp_path / "strict", dns, f'[checks]\n[checks.rspamd]\nurl = "{dead}"\ntimeout = 3\n', 5)
    try:
        rcpt = strict.new_user("down")
        with smtp(strict) as c:
            with pytest.raises(smtplib.SMTPDataError) as err:
                c.sendmail(SENDER, [rcpt], make_message(sender=SENDER, to=rcpt))
        assert err.value.smtp_code == 451 and b"4.7.1" in err.value.smtp_error
    finally:
        strict.stop()
    lenient = server_with(tmp_path / "lenient", dns,
                          f'[checks]\non_failure = "accept"\n[checks.rspamd]\nurl = "{dead}"\ntimeout = 3\n', 6)
    try:
        rcpt = lenient.new_user("down")
        with smtp(lenient) as c:
            assert c.sendmail(SENDER, [rcpt], make_message(sender=SENDER, to=rcpt)) == {}
        [stored] = lenient.export(rcpt)
        assert b"rspamd=skipped" in split_trace(stored).checks["merpati-verdict"]
    finally:
        lenient.stop()
