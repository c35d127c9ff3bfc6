"""The per-user Bayesian filter learns from IMAP moves and then files similar mail into Junk.

A real `merpati serve` with IMAP; the user moves spam from INBOX to Junk and files ordinary
mail into Archive with imaplib (a client nobody here wrote); the filter trains in the
background; later spam of the same kind is delivered straight into Junk, while ordinary mail
still reaches the inbox.
"""

from __future__ import annotations

import imaplib
import smtplib
import sqlite3
import time

import pytest

from merpati.delivery.checks.training import ACCOUNT_REFRESH
from support.merpati_server import PASSWORD, MerpatiServer
from support.messages import make_message, split_trace
from support.net import worker_address

SENDER = "someone@elsewhere.test"


def spam(rcpt: str, i: int) -> bytes:
    body = (f"Congratulations winner {i}! Claim your lottery prize and casino bonus now.\r\n"
            "Cheap pills, viagra, bitcoin doubling, act now, limited offer, click here.\r\n").encode()
    return make_message(sender="promo@lottery.test", to=rcpt, subject=f"You won the lottery prize {i}", body=body)


def ham(rcpt: str, i: int) -> bytes:
    body = (f"Hi, here are the minutes of project meeting {i}.\r\n"
            "The budget review moves to Thursday; please read the attached agenda before.\r\n").encode()
    return make_message(sender=SENDER, to=rcpt, subject=f"Minutes of the project meeting {i}", body=body)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = MerpatiServer(tmp_path_factory.mktemp("bayes"), host=worker_address(2), listeners=("imap",),
                      extra_smtp={"workers": 1})
    s.add_domain("merpati.test")
    s.start()
    yield s
    s.stop()


def send(server, rcpt: str, msg: bytes, sender: str = SENDER) -> None:
    with smtplib.SMTP(server.host, server.port, local_hostname="client.elsewhere.test", timeout=30) as c:
        assert c.sendmail(sender, [rcpt], msg) == {}


def totals(server, address: str) -> tuple[int, int]:
    con = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(
            "SELECT t.spam, t.ham FROM bayes_totals t JOIN accounts a ON a.id = t.account_id WHERE lower(a.address) = ?",
            (address.lower(),),
        ).fetchone()
        return (row[0], row[1]) if row else (0, 0)
    finally:
        con.close()


def test_moves_teach_the_filter_and_later_spam_goes_to_junk(server) -> None:
    user = server.new_user("learner")
    time.sleep(ACCOUNT_REFRESH + 1)  # the trainer subscribes to new accounts on its next refresh
    for i in range(6):
        send(server, user, spam(user, i), sender="promo@lottery.test")
        send(server, user, ham(user, i))
    imap = imaplib.IMAP4(server.host, server.ports["imap"], timeout=30)
    try:
        imap.login(user, PASSWORD)
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", None, "SUBJECT", "lottery")
        spam_uids = data[0].split()
        typ, data = imap.uid("SEARCH", None, "SUBJECT", "minutes")
        ham_uids = data[0].split()
        assert len(spam_uids) == 6 and len(ham_uids) == 6
        assert imap.uid("MOVE", b",".join(spam_uids).decode(), "Junk")[0] == "OK"
        assert imap.uid("MOVE", b",".join(ham_uids).decode(), "Archive")[0] == "OK"
    finally:
        imap.logout()
    deadline = time.monotonic() + 30
    while totals(server, user) != (6, 6) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert totals(server, user) == (6, 6)

    # the MX's copy of an untrained account's table is short-lived: keep sending until it sees the training
    deadline = time.monotonic() + 30
    i = 100
    while time.monotonic() < deadline:
        send(server, user, spam(user, i), sender="promo@lottery.test")
        if server.export(user, mailbox="Junk")[6:]:
            break
        i += 1
        time.sleep(1)
    junk = server.export(user, mailbox="Junk")
    assert len(junk) > 6, "later spam never reached Junk"
    verdict = split_trace(junk[-1]).checks["merpati-verdict"]
    assert verdict.startswith(b" junk;") and b"bayes=+" in verdict and b"spam probability" in verdict
    before = len(server.export(user))
    send(server, user, ham(user, 200))
    inbox = server.export(user)
    assert len(inbox) == before + 1
    assert split_trace(inbox[-1]).checks["merpati-verdict"].startswith(b" inbox;")
