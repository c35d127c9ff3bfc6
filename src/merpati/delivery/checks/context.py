"""What a check sees: the stage, the client, the envelope so far and, at end of data, the message.

One :class:`CheckContext` is built per call; ``session`` and ``transaction`` are plain dicts a
check (or hook) may use to remember things between stages: ``session`` lives as long as the
connection, ``transaction`` from MAIL FROM to the end of DATA (or RSET).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from merpati.delivery.envelope import ClientInfo, LocalRecipient

if TYPE_CHECKING:
    from merpati.delivery.checks.results import Result
    from merpati.mime import ParsedMessage


class Stage(enum.Enum):
    CONNECT = "connect"
    HELO = "helo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


# The method a check implements for each stage (hooks modules use the same names).
METHODS = {
    Stage.CONNECT: "on_connect",
    Stage.HELO: "on_helo",
    Stage.MAIL: "on_mail",
    Stage.RCPT: "on_rcpt",
    Stage.DATA: "on_data",
}


@dataclass(slots=True)
class CheckContext:
    stage: Stage
    client: ClientInfo
    hostname: str  # ours (the authserv-id of Authentication-Results)
    helo: str = ""
    sender: str | None = None  # "" is the null reverse-path <>; None before MAIL FROM
    recipient: str | None = None  # at RCPT: the address being checked
    recipients: tuple[str, ...] = ()  # RCPT addresses accepted so far
    accounts: tuple[LocalRecipient, ...] = ()  # the local mailboxes they resolved to
    message: bytes | None = None  # at DATA: the message as received (no trace fields of ours)
    parsed: ParsedMessage | None = None
    pregreet: bytes = b""  # at CONNECT: what the client sent before our banner
    session: dict[str, Any] = field(default_factory=dict)
    transaction: dict[str, Any] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)  # earlier results of this transaction

    @property
    def ip(self) -> str:
        return self.client.ip

    @property
    def tls(self) -> bool:
        return self.client.tls

    @property
    def score(self) -> float:
        """The score contributed so far (earlier stages and checks)."""
        return sum(r.score for r in self.results)

    def header(self, name: str) -> str | None:
        """The first header field ``name`` of the message (at DATA), unfolded, else None."""
        if self.parsed is None:
            return None
        return self.parsed.header(name)

    def headers(self, name: str) -> list[str]:
        return [] if self.parsed is None else list(self.parsed.header_fields(name))
