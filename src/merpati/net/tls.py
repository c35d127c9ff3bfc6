"""TLS server contexts (RFC 8314 / RFC 7525 defaults: TLS 1.2+, the library's cipher choice)."""

from __future__ import annotations

import ssl

from merpati.config.schema import TlsConfig


class TlsUnavailable(Exception):
    pass


def server_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """The server context, or None when no certificate is configured."""
    if not tls.cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION  # CRIME
    try:
        ctx.load_cert_chain(tls.cert, tls.key or None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsUnavailable(f"cannot load TLS certificate {tls.cert}: {exc}") from None
    return ctx
