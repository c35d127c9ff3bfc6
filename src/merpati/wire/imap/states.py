"""IMAP connection states and which command is allowed in which (RFC 9051 §3, §6).

The engine parses every command in every state; the session looks the command class up
here and answers ``BAD`` (RFC 9051 §6: "command unknown or arguments invalid" covers a
command issued in the wrong state) when ``type(cmd) not in ALLOWED[state]``.
Extensions that must be enabled or advertised first (UID EXPUNGE needs UIDPLUS, MOVE
needs MOVE ...) are the session's business: this table only encodes the RFC states.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from merpati.wire.imap import commands as c

__all__ = ["ALLOWED", "ANY_STATE", "AUTHENTICATED", "NOT_AUTHENTICATED", "SELECTED", "State"]


class State(enum.Enum):
    """RFC 9051 §3: the four connection states."""

    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"

    __hash__ = object.__hash__  # identity hash: cheap table lookups


ANY_STATE: frozenset[type] = frozenset({c.Capability, c.Noop, c.Logout, c.Id, c.Compress})
"""Valid in every state but LOGOUT (RFC 9051 §6.1, ID RFC 2971, COMPRESS RFC 4978
— the session may refuse COMPRESS before authentication, as Dovecot does)."""

NOT_AUTHENTICATED: frozenset[type] = ANY_STATE | {c.StartTls, c.Authenticate, c.Login}

AUTHENTICATED: frozenset[type] = ANY_STATE | {
    c.Enable, c.Select, c.Examine, c.Create, c.Delete, c.Rename, c.Subscribe,
    c.Unsubscribe, c.List, c.Lsub, c.Namespace, c.Status, c.Append, c.Idle,
    c.GetQuota, c.GetQuotaRoot, c.SetQuota,
}

SELECTED: frozenset[type] = (AUTHENTICATED - {c.Enable}) | {
    c.Check, c.Close, c.Unselect, c.Expunge, c.UidExpunge, c.Search, c.Sort, c.Thread,
    c.Fetch, c.Store, c.Copy, c.Move,
}

# ENABLE is valid only before a mailbox is selected (RFC 5161 §3.1, RFC 9051 §6.3.1).
ALLOWED: Mapping[State, frozenset[type]] = MappingProxyType(
    {
        State.NOT_AUTHENTICATED: NOT_AUTHENTICATED,
        State.AUTHENTICATED: AUTHENTICATED,
        State.SELECTED: SELECTED,
        State.LOGOUT: frozenset(),
    }
)
"""``ALLOWED[state]`` is the set of command classes valid in ``state``."""
