"""Hostile input against a running MX (SECURITY-CASES SMTP-*, MIME-01, STORE-06), over real sockets."""

from __future__ import annotations

import itertools
import time

import pytest
from mx_harness import Client, MxServer, wait_until

from merpati.config.schema import LimitsConfig, SmtpConfig

_ids = itertools.count()

BODY = b"From: a@remote.test\r\nSubject: t\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    server = MxServer(
        tmp_path_factory.mktemp("mx"),
        smtp=SmtpConfig(error_sleep=0.0, max_received=100),
        limits=LimitsConfig(message_size=100_000, max_recipients=5),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def user(mx) -> str:
    address = f"u{next(_ids)}@hostile.test"
    mx.add_user(address)
    return address


def ehlo(mx) -> Client:
    c = Client(mx)
    assert c.banner[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    return c


# -- STARTTLS (SMTP-10, -11, -12) ----------------------------------------------------------
@pytest.mark.parametrize("injected", [b"EHLO commandinjectiontester\r\n", b"RSET\r\n", b"NOOP\r\n"])
def test_starttls_command_injection_is_discarded(mx, injected):
    c = ehlo(mx)
    c.send(b"STARTTLS\r\n" + injected)
    code, _ = c.reply()
    if code == 554:  # the engine may instead refuse the pipelined group outright
        assert c.closed_soon()
        return
    assert code == 220
    c.starttls()
    assert c.nothing_within(0.5), "an unsolicited reply arrived inside TLS"
    assert c.cmd("FAKE x")[0] in (500, 502)


def test_after_starttls_ehlo_is_needed_again_and_second_starttls_refused(mx, user):
    c = ehlo(mx)
    assert c.cmd("STARTTLS")[0] == 220
    c.starttls()
    assert c.cmd(f"MAIL FROM:<a@remote.test>")[0] == 503
    code, text = c.cmd("EHLO client.test")
    assert code == 250 and "STARTTLS" not in text
    assert c.cmd("STARTTLS")[0] >= 500
    assert c.send_message("a@remote.test", [user], BODY)[0] == 250
    assert "with ESMTPS" in mx.messages(user)[0].decode()


# -- smuggling (SMTP-01..04) end to end -------------------------------------------------------
SMUGGLE_VARIANTS = [
    b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\r\n.\r\r\n", b"\r\n.\r\r\n",
    b"\r.\n", b"\n.\r", b"\r\n.\n", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n",
]


@pytest.mark.parametrize("variant", SMUGGLE_VARIANTS, ids=repr)
def test_smuggling_variant_never_ends_data(mx, user, variant):
    victim = f"victim{next(_ids)}@hostile.test"
    mx.add_user(victim)
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{user}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    probe = (
        b"From: a@remote.test\r\n\r\nbody line\r\n" + variant
        + b"mail FROM:<smuggled@x.test>\r\nrcpt TO:<" + victim.encode() + b">\r\ndata\r\n"
        + b"From: smuggled@x.test\r\n\r\nSMUGGLED\r\n.\r\n"
    )
    c.send(probe)
    code, _ = c.reply()
    assert c.nothing_within(0.3), "more than one completion reply for one probe"
    assert code in (250, 550)
    assert mx.messages(victim) == []
    stored = mx.messages(user)
    assert all(b"smuggled@x.test" not in m.split(b"\r\n\r\n")[0] for m in stored)


# -- pipelining (SMTP-07) ---------------------------------------------------------------------
def test_pipelining_after_helo_is_a_synchronisation_error(mx, user):
    c = Client(mx)
    assert c.cmd("HELO client.test")[0] == 250
    c.send(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{user}>\r\n".encode())
    code, text = c.reply()
    assert code == 554 and "5.5.0" in text
    assert c.closed_soon()


def test_pipelined_data_with_body_after_a_message_is_refused(mx, user):
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{user}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(BODY + f".\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<{user}>\r\nDATA\r\nSubject: x\r\n\r\nsmuggled\r\n.\r\n".encode())
    codes = [c.reply()[0] for _ in range(4)]
    assert codes[:3] == [250, 250, 250]
    assert codes[3] == 554
    assert c.closed_soon()
    assert len(mx.messages(user)) == 1


# -- limits (SMTP-20, -22, -23, -25) -------------------------------------------------------------
def test_declared_size_over_the_limit_is_552_at_mail(mx):
    c = ehlo(mx)
    code, text = c.cmd("MAIL FROM:<a@remote.test> SIZE=999999999999")
    assert code == 552 and "5.3.4" in text


def test_actual_size_over_the_limit_is_552_after_data_and_stays_in_sync(mx, user):
    c = ehlo(mx)
    body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 200
    code, text = c.send_message("a@remote.test", [user], body)
    assert code == 552 and "5.3.4" in text
    assert c.cmd("NOOP")[0] == 250
    assert c.send_message("a@remote.test", [user], BODY)[0] == 250
    assert len(mx.messages(user)) == 1


def test_recipients_past_the_limit_get_452_and_accepted_ones_are_kept(mx):
    users = [f"r{next(_ids)}@hostile.test" for _ in range(6)]
    for u in users:
        mx.add_user(u)
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    codes = [c.cmd(f"RCPT TO:<{u}>")[0] for u in users]
    assert codes == [250] * 5 + [452]
    assert c.cmd("DATA")[0] == 354
    c.send(BODY + b".\r\n")
    assert c.reply()[0] == 250
    assert [len(mx.messages(u)) for u in users] == [1] * 5 + [0]


def test_overlong_command_line_is_refused_and_the_session_continues(mx):
    c = ehlo(mx)
    code, text = c.cmd(b"NOOP " + b"A" * 5000)
    assert code == 500
    assert c.cmd("NOOP")[0] == 250


def test_error_flood_disconnects_at_the_hard_limit(mx):
    c = ehlo(mx)
    codes = []
    for _ in range(25):
        try:
            codes.append(c.cmd("BOGUS")[0])
        except ConnectionError:
            break
    assert codes[-1] == 421
    assert len(codes) <= 21
    assert c.closed_soon()


def test_replies_never_echo_raw_control_bytes(mx):
    c = ehlo(mx)
    c.send(b"RCPT TO:<a\rb\x00@x.test>\r\n")
    raw = c.line()
    assert b"\r" not in raw and b"\x00" not in raw and len(raw) <= 512


# -- relay, loops, MIME bombs (SMTP-16, -27, MIME-01) -----------------------------------------
def test_relay_forms_are_denied_end_to_end(mx, user):
    local, domain = user.split("@")
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<>")[0] == 250
    for rcpt in [
        "nobody@third-party.test",
        f"nobody%third-party.test@{domain}",
        f'"nobody@third-party.test"@{domain}',
        f"third-party.test!nobody@{domain}",
        f"@{domain}:nobody@third-party.test",
    ]:
        code, text = c.cmd(f"RCPT TO:<{rcpt}>")
        assert (code, text[:5]) in ((554, "5.7.1"), (501, "5.1.3")), (rcpt, code, text)


def test_source_route_to_a_local_user_is_stripped_and_delivered(mx, user):
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<@relay.test:a@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<@mx.merpati.test:{user}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(BODY + b".\r\n")
    assert c.reply()[0] == 250
    assert mx.messages(user)[0].startswith(b"Return-Path: <a@remote.test>\r\n")


@pytest.mark.parametrize(("hops", "accepted"), [(99, True), (100, True), (101, False)])
def test_mail_loop_by_received_count(mx, user, hops, accepted):
    # Our own Received: is one more hop; the limit counts what arrives plus ours (Postfix counts likewise).
    headers = b"".join(b"Received: from h%d by h%d; Sat, 28 Nov 2026 00:00:00 +0000\r\n" % (i, i) for i in range(hops))
    c = ehlo(mx)
    code, text = c.send_message("a@remote.test", [user], headers + BODY)
    if accepted and hops < 100:
        assert code == 250
    elif not accepted:
        assert code == 554 and "5.4.6" in text
    assert c.cmd("NOOP")[0] == 250


def test_message_already_delivered_to_the_same_mailbox_is_a_loop(mx, user):
    c = ehlo(mx)
    code, text = c.send_message("a@remote.test", [user], f"Delivered-To: {user}\r\n".encode() + BODY)
    assert code == 554 and "5.4.6" in text
    assert mx.messages(user) == []


def test_alias_loop_is_refused_at_rcpt(mx):
    a, b = f"loopa{next(_ids)}@hostile.test", f"loopb{next(_ids)}@hostile.test"
    mx.add_user(f"owner{next(_ids)}@hostile.test")
    mx.add_alias(a, b)
    mx.add_alias(b, a)
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    code, text = c.cmd(f"RCPT TO:<{a}>")
    assert code == 554 and "5.4.6" in text


def test_deeply_nested_mime_is_refused(mx, user):
    depth = 200
    parts = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    c = ehlo(mx)
    code, text = c.send_message("a@remote.test", [user], b"Subject: bomb\r\n" + parts + b"x\r\n")
    assert code == 554 and "5.6.0" in text
    assert c.cmd("NOOP")[0] == 250


def test_eight_bit_and_utf8_envelopes(mx):
    user = f"ü{next(_ids)}@hostile.test"
    mx.add_user(user)
    c = ehlo(mx)
    assert c.cmd(f"MAIL FROM:<ö@remote.test>".encode())[0] == 553
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<ö@remote.test> SMTPUTF8 BODY=8BITMIME".encode())[0] == 250
    assert c.cmd(f"RCPT TO:<{user}>".encode())[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: grüße\r\n\r\nüber\r\n.\r\n".encode())
    assert c.reply()[0] == 250
    stored = mx.messages(user)[0]
    assert "with UTF8SMTP" in stored.decode() and stored.endswith("über\r\n".encode())


# -- connection limits and timeouts (SMTP-26), graceful shutdown ---------------------------------
@pytest.fixture
def strict_mx(tmp_path):
    server = MxServer(
        tmp_path, smtp=SmtpConfig(error_sleep=0.0, max_connections_per_ip=3, command_timeout=1.0)
    ).start()
    yield server
    server.stop()


def test_per_ip_connection_cap(strict_mx):
    clients = [Client(strict_mx) for _ in range(3)]
    assert all(c.banner[0] == 220 for c in clients)
    extra = Client(strict_mx)
    assert extra.banner[0] == 421
    clients[0].cmd("QUIT")
    clients[0].close()
    assert wait_until(lambda: Client(strict_mx).banner[0] == 220, timeout=5)


def test_idle_client_times_out_with_421(strict_mx):
    c = Client(strict_mx)
    started = time.monotonic()
    code, text = c.reply()
    assert code == 421 and "4.4.2" in text
    assert time.monotonic() - started < 10


def test_trickled_command_does_not_extend_the_deadline(strict_mx):
    c = Client(strict_mx)
    for ch in b"NOOP":
        c.send(bytes([ch]))
        time.sleep(0.3)
    code, _ = c.reply()
    assert code == 421


def test_graceful_shutdown_finishes_the_transaction_in_flight(tmp_path):
    server = MxServer(tmp_path).start()
    user = "late@shutdown.test"
    server.add_user(user)
    idle = Client(server)
    busy = Client(server)
    assert busy.cmd("EHLO c.test")[0] == 250
    assert busy.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    assert busy.cmd(f"RCPT TO:<{user}>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    busy.send(b"Subject: in flight\r\n\r\n")
    server.request_stop()
    assert idle.reply()[0] == 421
    time.sleep(0.2)
    busy.send(b"the end\r\n.\r\n")
    assert busy.reply()[0] == 250
    server.stop()
    assert not server.running
    assert len(server.messages(user)) == 1


def test_auth_is_refused_on_the_mx_and_an_aborted_exchange_is_harmless(mx):
    c = ehlo(mx)
    assert c.cmd("AUTH PLAIN AGZvbwBiYXI=")[0] in (503, 538)
    assert c.cmd("AUTH LOGIN")[0] in (503, 538)
    assert c.cmd("*")[0] in (500, 501, 502)
    assert c.cmd("VRFY postmaster")[0] == 252
    assert c.cmd("NOOP")[0] == 250


def test_low_disk_space_is_452_at_mail(tmp_path):
    # A message size limit larger than any disk: 1.5 × that is never free (STORE-05).
    server = MxServer(tmp_path, limits=LimitsConfig(message_size=1 << 61)).start()
    try:
        c = ehlo(server)
        code, text = c.cmd("MAIL FROM:<a@remote.test>")
        assert code == 452 and "4.3.1" in text
    finally:
        server.stop()


def test_dsn_parameters_are_accepted_and_stored_for_the_queue(mx, user):
    c = ehlo(mx)
    assert c.cmd("MAIL FROM:<a@remote.test> RET=HDRS ENVID=QQ314159")[0] == 250
    assert c.cmd(f"RCPT TO:<{user}> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;{user}")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(BODY + b".\r\n")
    assert c.reply()[0] == 250

    async def envelope(store):  # type: ignore[no-untyped-def]
        account = await store.get_account(user)
        box = await store.get_mailbox(account.id, "INBOX")
        (meta,) = await store.list_messages(box.id)
        return await store.get_envelope(box.id, meta.uid)

    stored = mx.run_store(envelope)
    assert (stored.sender, stored.recipient, stored.ret, stored.envid) == ("a@remote.test", user, "HDRS", "QQ314159")
    assert stored.notify == ("SUCCESS", "DELAY")
    assert stored.original_recipient.lower().endswith(user)
