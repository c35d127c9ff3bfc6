"""STARTTLS, LOGIN, AUTHENTICATE (RFC 9051 §6.2; SASL-IR RFC 4959; IMAP-02, AUTH-01..06).

Credentials are refused on a connection that is not secure (neither TLS nor trusted
loopback, ``Authenticator.is_secure``) with ``NO [PRIVACYREQUIRED]`` and LOGINDISABLED is
advertised. Every failure is the same generic ``NO [AUTHENTICATIONFAILED]`` after the
authenticator's growing delay; SASL syntax errors are ``BAD``.
"""

from __future__ import annotations

from merpati.services.imap.session import Action, ImapBad, ImapNo, ImapSession, Reply
from merpati.wire import sasl
from merpati.wire.imap import commands as c

FAILED = "Authentication failed."


# RFC 9051 §6.2.1
async def starttls(s: ImapSession, tag: str, cmd: c.StartTls) -> Reply:
    if s.tls:
        raise ImapBad("TLS is already active")
    if not s.ctx.settings.tls_available:
        raise ImapBad("TLS is not available")
    return Reply(text="Begin TLS negotiation now", action=Action.START_TLS)


async def _finish_login(s: ImapSession, username: str, password: str) -> Reply:
    account = await s.ctx.authenticator.authenticate(username, password, remote_ip=s.remote_ip)
    if account is None:
        raise ImapNo(FAILED, "AUTHENTICATIONFAILED")
    if not s.logged_in(account):
        raise ImapNo("Too many connections for this user from your address", "LIMIT")
    return Reply(code="CAPABILITY " + " ".join(s.capabilities()), text="Logged in")


# RFC 9051 §6.2.3
async def login(s: ImapSession, tag: str, cmd: c.Login) -> Reply:
    if not s.secure:
        raise ImapNo("Use STARTTLS first", "PRIVACYREQUIRED")
    return await _finish_login(s, cmd.username, cmd.password)


# RFC 9051 §6.2.2
async def authenticate(s: ImapSession, tag: str, cmd: c.Authenticate) -> Reply:
    if not s.secure:
        raise ImapNo("Use STARTTLS first", "PRIVACYREQUIRED")
    exchange = sasl.new_exchange(cmd.mechanism)
    if exchange is None:
        raise ImapNo("Unsupported authentication mechanism", "CANNOT")
    try:
        step = exchange.start(cmd.initial_response)
    except sasl.SaslError as exc:
        raise ImapBad(f"Invalid SASL response: {exc}") from None
    return await _advance(s, tag, exchange, step)


async def auth_response(s: ImapSession, tag: str, data: bytes) -> Reply:
    """A client line of the exchange in progress (``AuthResponse``)."""
    exchange = s.auth
    s.auth = None
    if exchange is None:
        raise ImapBad("No authentication in progress")
    try:
        step = exchange.step(data)
    except sasl.SaslError as exc:
        raise ImapBad(f"Invalid SASL response: {exc}") from None
    return await _advance(s, tag, exchange, step)


async def _advance(s: ImapSession, tag: str, exchange: sasl.Exchange, step: sasl.Step) -> Reply:
    if isinstance(step, sasl.Challenge):
        s.auth = exchange
        s.auth_tag = tag
        s.out.append(b"+ " + sasl.encode_base64(step.data) + b"\r\n")
        return Reply(action=Action.AUTH_CONTINUE)
    creds = step.credentials
    if creds.authzid and creds.authzid.lower() != creds.username.lower():
        await s.ctx.authenticator.authenticate(creds.username, "", remote_ip=s.remote_ip)
        raise ImapNo(FAILED, "AUTHORIZATIONFAILED")
    return await _finish_login(s, creds.username, creds.password)
