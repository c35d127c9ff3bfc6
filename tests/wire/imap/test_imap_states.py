"""The state table (RFC 9051 §3, §6)."""

from __future__ import annotations

from merpati.wire.imap import ALLOWED, State
from merpati.wire.imap import commands as c


def test_any_state_commands() -> None:
    for state in (State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED):
        assert {c.Capability, c.Noop, c.Logout, c.Id} <= ALLOWED[state]
    assert ALLOWED[State.LOGOUT] == frozenset()


def test_not_authenticated() -> None:
    allowed = ALLOWED[State.NOT_AUTHENTICATED]
    assert {c.StartTls, c.Login, c.Authenticate} <= allowed
    assert not {c.Select, c.List, c.Fetch, c.Append, c.Enable, c.Idle} & allowed


def test_authenticated_and_selected() -> None:
    auth, sel = ALLOWED[State.AUTHENTICATED], ALLOWED[State.SELECTED]
    assert {c.Select, c.Examine, c.Create, c.Delete, c.Rename, c.Subscribe, c.Unsubscribe, c.List, c.Lsub,
            c.Namespace, c.Status, c.Append, c.Idle, c.Enable} <= auth
    assert not {c.Login, c.StartTls, c.Authenticate, c.Fetch, c.Store, c.Expunge, c.Close} & auth
    assert {c.Fetch, c.Store, c.Search, c.Sort, c.Thread, c.Copy, c.Move, c.Expunge, c.UidExpunge,
            c.Close, c.Unselect, c.Check} <= sel
    assert c.Enable not in sel  # RFC 5161 §3.1
    assert (auth - {c.Enable}) <= sel


def test_table_is_read_only() -> None:
    import pytest
    with pytest.raises(TypeError):
        ALLOWED[State.LOGOUT] = frozenset({c.Noop})  # type: ignore[index]
