"""HELO/EHLO sanity (RFC 5321 §4.1.1.1, §4.1.4): small scores, never a rejection by itself.

RFC 5321 says a server must not refuse mail because the HELO name does not verify, so these
only score: a name that is not a fully qualified domain, a bare IP address, an address literal
that is not the client's, a name that is not even syntactically a domain, or our own name.
"""

from __future__ import annotations

import ipaddress
import re

from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, add_score

_IPV4_CHARS = "0123456789."
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class HeloCheck:
    name = "helo"

    def __init__(
        self,
        *,
        not_fqdn: float = 1.0,
        bare_ip: float = 2.0,
        literal_mismatch: float = 1.5,
        invalid: float = 1.5,
        ours: float = 3.0,
    ) -> None:
        self._scores = {"not_fqdn": not_fqdn, "bare_ip": bare_ip, "literal": literal_mismatch,
                        "invalid": invalid, "ours": ours}

    async def on_helo(self, ctx: CheckContext) -> Result | None:
        return self.judge(ctx.helo, client_ip=ctx.ip, ours=ctx.hostname)

    def judge(self, name: str, *, client_ip: str, ours: str) -> Result | None:
        s = self._scores
        name = name.strip()
        if name.startswith("[") and name.endswith("]"):
            literal = name[1:-1]
            if literal[:5].lower() == "ipv6:":
                literal = literal[5:]
            try:
                given = ipaddress.ip_address(literal)
                client = ipaddress.ip_address(client_ip)
            except ValueError:
                return add_score(s["invalid"], "HELO address literal is not an address")
            if given != client:
                return add_score(s["literal"], "HELO address literal is not the client's address")
            return None
        if ":" in name or not name.strip(_IPV4_CHARS):  # could be an address (IPv6 has a colon)
            try:
                ipaddress.ip_address(name)
                return add_score(s["bare_ip"], "HELO is a bare IP address")
            except ValueError:
                pass
        host = name[:-1] if name.endswith(".") else name
        if not host or len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
            return add_score(s["invalid"], "HELO name is not a valid domain")
        if "." not in host:
            return add_score(s["not_fqdn"], "HELO name is not fully qualified")
        if ours and host.lower() == ours.lower().rstrip("."):
            return add_score(s["ours"], "HELO claims to be this server")
        return None
