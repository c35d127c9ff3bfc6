"""Mailbox names as the session sees them: one personal namespace ``""`` with delimiter ``/``.

Every store call is keyed by the logged-in account's id, so no name can reach another
account's mailboxes; on top of that, names a client could use to probe other namespaces
or file-system tricks are refused outright (SECURITY-CASES IMAP: ``..``, ``#shared``,
``~user``, empty levels, a leading delimiter).
"""

from __future__ import annotations

from merpati.services.imap.session import ImapNo
from merpati.storage.models import INBOX
from merpati.wire.imap import response
from merpati.wire.imap.pattern import match_mailbox_pattern

DELIMITER = "/"


def check_new_name(name: str) -> str:
    """A name the client may create (CREATE, RENAME target); trailing delimiters dropped
    (RFC 9051 §6.3.4). Raises ``ImapNo [CANNOT]``."""
    while name.endswith(DELIMITER) and len(name) > 1:
        name = name[:-1]
    check_name(name)
    return name


def check_name(name: str) -> None:
    if not name:
        raise ImapNo("Invalid mailbox name", "CANNOT")
    if name[0] in "#~" or name.startswith(DELIMITER):
        raise ImapNo("Mailbox names outside the personal namespace are not allowed", "CANNOT")
    for level in name.split(DELIMITER):
        if level in ("", ".", ".."):
            raise ImapNo("Invalid mailbox name", "CANNOT")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in level):
            raise ImapNo("Invalid mailbox name", "CANNOT")


def wire(name: str, *, utf8: bool) -> bytes:
    """The name as an IMAP string (modified UTF-7 unless UTF-8 is enabled; then a quoted
    UTF-8 string, RFC 6855 §3, since names hold no control characters)."""
    if utf8 and not name.isascii() and len(name) < 1024 and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return b'"' + name.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8") + b'"'
    return response.mailbox(name, utf8=utf8)


def canonical(name: str) -> str:
    if name.upper() == INBOX:
        return INBOX
    if name[:6].upper() == INBOX + DELIMITER:
        return INBOX + name[5:]
    return name


def pattern_matches(pattern: str, name: str) -> bool:
    """LIST/LSUB matching; ``INBOX`` (and the ``INBOX/`` prefix) match case-insensitively."""
    if pattern[:5].upper() == INBOX:
        pattern = INBOX + pattern[5:]
    return match_mailbox_pattern(pattern, name, DELIMITER)


def full_pattern(reference: str, pattern: str) -> str:
    """RFC 9051 §6.3.9: the reference and the pattern are concatenated (a pattern that starts
    with the delimiter ignores a reference ending with one)."""
    if not reference:
        return pattern
    if reference.endswith(DELIMITER) and pattern.startswith(DELIMITER):
        return reference + pattern[1:]
    return reference + pattern


def parents(name: str) -> list[str]:
    out = []
    i = name.find(DELIMITER)
    while i > 0:
        out.append(name[:i])
        i = name.find(DELIMITER, i + 1)
    return out
