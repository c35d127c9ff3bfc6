"""curl's POP3 client (`curl pop3://`, `pop3s://`) against `merpati serve`: LIST, RETR,
custom commands (UIDL, TOP, DELE), STLS required, implicit TLS, SASL PLAIN with an initial
response and LOGIN."""

from __future__ import annotations

import smtplib

import pytest

from support.merpati_server import PASSWORD

from .clients import describe, run_client

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("pop3", "pop3s")}


def deliver(merpati, rcpt: str, count: int) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as smtp:
        for i in range(count):
            smtp.sendmail("c@elsewhere.test", [rcpt], b"Subject: curl %d\r\n\r\nline\r\n.dot line\r\n" % i)


def curl(merpati, user: str, path: str = "/", *extra: str, scheme: str = "pop3"):  # type: ignore[no-untyped-def]
    port = merpati.ports["pop3s" if scheme == "pop3s" else "pop3"]
    args = [
        "--silent", "--show-error", "--noproxy", "*", "--max-time", "60",
        "--user", f"{user}:{PASSWORD}", f"{scheme}://{merpati.host}:{port}{path}", *extra,
    ]
    proc = run_client("curl", args)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


@pytest.mark.parametrize(
    "scheme, extra",
    [("pop3", ()), ("pop3", ("--ssl-reqd", "--insecure")), ("pop3s", ("--insecure",))],
    ids=["plain", "stls", "pop3s"],
)
def test_list_and_retrieve(merpati, scheme: str, extra: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("curl")
    deliver(merpati, user, 2)
    stored = merpati.export(user)
    listing = curl(merpati, user, "/", *extra, scheme=scheme)
    assert listing == b"".join(b"%d %d\r\n" % (i, len(m)) for i, m in enumerate(stored, 1))
    for i, message in enumerate(stored, 1):
        assert curl(merpati, user, f"/{i}", *extra, scheme=scheme) == message  # curl unstuffs ".."


def test_custom_commands_uidl_top_dele(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("curlcmd")
    deliver(merpati, user, 3)
    uidl = curl(merpati, user, "/", "--request", "UIDL").split(b"\r\n")[:-1]
    assert [line.split()[0] for line in uidl] == [b"1", b"2", b"3"]
    top = curl(merpati, user, "/", "--request", "TOP 1 0")
    assert top.endswith(b"Subject: curl 0\r\n\r\n")
    curl(merpati, user, "/2", "--request", "DELE", "--head")
    assert [m.split(b"Subject: ")[1][:6] for m in merpati.export(user)] == [b"curl 0", b"curl 2"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_sasl_login(merpati, mechanism: str) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("curlsasl")
    deliver(merpati, user, 1)
    [stored] = merpati.export(user)
    out = curl(merpati, user, "/1", "--login-options", f"AUTH={mechanism}", "--sasl-ir", "--ssl-reqd", "--insecure")
    assert out == stored


def test_wrong_password_fails(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("curlwrong")
    proc = run_client("curl", [
        "--silent", "--noproxy", "*", "--max-time", "60", "--user", f"{user}:wrong",
        f"pop3://{merpati.host}:{merpati.ports['pop3']}/",
    ])
    assert proc.returncode == 67, describe(proc)  # CURLE_LOGIN_DENIED
