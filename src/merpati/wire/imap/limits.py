"""Limits of the IMAP server engine (one frozen dataclass, a constructor parameter).

Defaults follow Dovecot: 8 KiB lines before login (``IMAP_LOGIN_MAX_LINE_LENGTH``),
64 KiB after (``imap_max_line_length``), one open parenthesis before login
(``IMAP_LOGIN_LIST_COUNT_LIMIT``, CVE-2026-27857), LITERAL- at 4096 (RFC 7888 §5).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImapLimits"]


@dataclass(frozen=True, slots=True)
class ImapLimits:
    """Every limit the engine enforces.

    * ``max_line`` / ``max_line_prelogin``: one command line (up to CRLF, literal octets
      not counted) incl. CRLF; the whole command (all its lines) may be at most
      ``max_command`` / ``max_command_prelogin`` octets of non-APPEND data, literals included.
    * ``max_literal`` / ``max_literal_prelogin``: any literal that is not APPEND message
      data (LOGIN arguments, mailbox names, search strings).
    * ``message_size``: APPEND message literals (advertised as ``APPENDLIMIT=``); over it
      the command is refused with ``NO [TOOBIG]`` before any continuation.
    * ``max_nonsync_literal``: the LITERAL- bound (RFC 7888 §5) when LITERAL+ is off.
    * ``max_depth`` / ``max_depth_prelogin``: nesting of parenthesised lists.
    * ``max_sequence_ranges``: comma-separated items in one sequence set.
    * ``max_search_keys`` / ``max_search_depth``: search keys per command and NOT/OR/()
      nesting.
    * ``max_append_messages``: messages in one MULTIAPPEND.
    * ``max_auth_line``: one AUTHENTICATE response line (Dovecot LOGIN_MAX_AUTH_BUF_SIZE).
    * ``max_literal_digits``: a literal size with more digits is refused before any
      arithmetic (no huge-integer conversion).
    """

    max_line: int = 65_536
    max_line_prelogin: int = 8_192
    max_command: int = 262_144
    max_command_prelogin: int = 24_576
    max_literal: int = 65_536
    max_literal_prelogin: int = 8_192
    message_size: int = 52_428_800
    max_nonsync_literal: int = 4_096
    max_depth: int = 32
    max_depth_prelogin: int = 1
    max_sequence_ranges: int = 16_384
    max_search_keys: int = 1_000
    max_search_depth: int = 32
    max_append_messages: int = 1_000
    max_auth_line: int = 8_192
    max_literal_digits: int = 12

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ImapLimits.{name} must be a positive integer")
        if self.max_line < 1024 or self.max_line_prelogin < 1024:
            raise ValueError("IMAP line limits below 1024 octets break clients")
        if self.message_size >= 10 ** self.max_literal_digits:
            raise ValueError("message_size needs more than max_literal_digits digits")
