"""merpati.mime: parse a message once into a compact, JSON-serialisable part
tree with byte offsets; IMAP ENVELOPE, BODY/BODYSTRUCTURE, BODY[section] and
BINARY extraction, header lookups and a preview come from it without
re-parsing the message.  Imports only the stdlib (DESIGN.md layer rules).

Choices (Dovecot 2.3.19 is the reference; tests/mime/data/dovecot_fixtures.json
holds its recorded answers for the CPython corpus and crafted messages):

* lines = number of LF in the part body; an unterminated last line is not
  counted ("a\\r\\nb" → 1), as Dovecot does.  Size = octets as stored.
* The CRLF before a boundary belongs to the boundary, even when it ends the
  header's blank line (the header then loses it, the body is empty).
* Boundaries match by prefix (RFC 2046 §5.1.1), longest wins, innermost on ties.
* ENVELOPE: last Date/Subject/Message-ID/In-Reply-To wins; address fields add
  up over repeated headers, at most ``max_addresses`` each; source routes are
  kept as adl; missing local part/domain become MISSING_MAILBOX/MISSING_DOMAIN;
  a comment is the name when there is no phrase.
* message/rfc822 is parsed as a message whatever its CTE; message/global too
  (RFC 9051; Dovecot 2.3 treats it as a leaf).
* A Content-Type without subtype is invalid → text/plain (RFC 2045 §5.2).
* Section "N.1" of a non-multipart part N is N itself (Dovecot).
"""

from .imap import render_imap
from .limits import MimeLimitError, MimeLimits
from .message import ParsedMessage, parse_message
from .text import decode_words

__all__ = ["parse_message", "ParsedMessage", "MimeLimits", "MimeLimitError", "render_imap",
           "decode_words"]
