"""[pop3] login_delay through `merpati serve`: advertised in CAPA, enforced with [LOGIN-DELAY]."""

from __future__ import annotations

import poplib

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {"listeners": ("pop3",), "extra_config": "[pop3]\nlogin_delay = 600\n"}


def test_login_delay_is_advertised_and_a_second_login_too_soon_is_refused(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("delay")
    first = poplib.POP3(merpati.host, merpati.ports["pop3"], timeout=30)
    assert first.capa()["LOGIN-DELAY"] == ["600"]
    first.user(user)
    first.pass_(PASSWORD)
    first.quit()
    second = poplib.POP3(merpati.host, merpati.ports["pop3"], timeout=30)
    second.user(user)
    try:
        second.pass_(PASSWORD)
    except poplib.error_proto as exc:
        assert b"[LOGIN-DELAY]" in exc.args[0]
    else:
        raise AssertionError("a second login within login_delay was accepted")
    finally:
        second.close()
