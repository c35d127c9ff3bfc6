"""The command table: command class → handler and flags (Dovecot's ``{name, fn, flags}``).

Which state allows which command is ``merpati.wire.imap.states.ALLOWED`` (the RFC's table);
this one says who answers and how the session treats the mailbox around it:

* ``sync``: after the command, bring the selected mailbox up to date (untagged EXISTS,
  FETCH FLAGS, EXPUNGE/VANISHED).
* ``expunges``: EXPUNGE/VANISHED may be sent then. False for FETCH, STORE and SEARCH
  (RFC 9051 §7.5.1), whose UID forms allow them (the session checks ``command.uid``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from merpati.services.imap import (
    cmd_append,
    cmd_auth,
    cmd_copy,
    cmd_fetch,
    cmd_idle,
    cmd_mailbox,
    cmd_misc,
    cmd_quota,
    cmd_search,
    cmd_select,
    cmd_store,
)
from merpati.wire.imap import commands as c

Handler = Callable[[Any, str, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Entry:
    handler: Handler
    sync: bool = True
    expunges: bool = True


_NO_EXPUNGE = {"expunges": False}

REGISTRY = MappingProxyType({
    # any state
    c.Capability: Entry(cmd_misc.capability),
    c.Noop: Entry(cmd_misc.noop),
    c.Logout: Entry(cmd_misc.logout, sync=False),
    c.Id: Entry(cmd_misc.id_),
    c.Compress: Entry(cmd_misc.compress, sync=False),
    # not authenticated
    c.StartTls: Entry(cmd_auth.starttls, sync=False),
    c.Login: Entry(cmd_auth.login, sync=False),
    c.Authenticate: Entry(cmd_auth.authenticate, sync=False),
    # authenticated
    c.Enable: Entry(cmd_misc.enable),
    c.Select: Entry(cmd_select.select, sync=False),
    c.Examine: Entry(cmd_select.examine, sync=False),
    c.Create: Entry(cmd_mailbox.create),
    c.Delete: Entry(cmd_mailbox.delete),
    c.Rename: Entry(cmd_mailbox.rename),
    c.Subscribe: Entry(cmd_mailbox.subscribe),
    c.Unsubscribe: Entry(cmd_mailbox.unsubscribe),
    c.List: Entry(cmd_mailbox.list_),
    c.Lsub: Entry(cmd_mailbox.lsub),
    c.Namespace: Entry(cmd_misc.namespace),
    c.Status: Entry(cmd_mailbox.status),
    c.Append: Entry(cmd_append.append),
    c.Idle: Entry(cmd_idle.idle, sync=False),
    c.GetQuota: Entry(cmd_quota.getquota),
    c.GetQuotaRoot: Entry(cmd_quota.getquotaroot),
    c.SetQuota: Entry(cmd_quota.setquota),
    # selected
    c.Check: Entry(cmd_misc.noop),
    c.Close: Entry(cmd_select.close, sync=False),
    c.Unselect: Entry(cmd_select.unselect, sync=False),
    c.Expunge: Entry(cmd_select.expunge),
    c.UidExpunge: Entry(cmd_select.uid_expunge),
    c.Search: Entry(cmd_search.search, **_NO_EXPUNGE),
    c.Sort: Entry(cmd_search.sort, **_NO_EXPUNGE),
    c.Thread: Entry(cmd_search.thread, **_NO_EXPUNGE),
    c.Fetch: Entry(cmd_fetch.fetch, **_NO_EXPUNGE),
    c.Store: Entry(cmd_store.store, **_NO_EXPUNGE),
    c.Copy: Entry(cmd_copy.copy),
    c.Move: Entry(cmd_copy.move),
})
