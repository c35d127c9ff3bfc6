"""merpati.mime: parse a message once into a compact, JSON-serialisable part
tree with byte offsets; IMAP ENVELOPE, BODY/BODYSTRUCTURE, BODY[section] and
BINARY extraction, header lookups and a preview come from it without
re-parsing the message.  Imports only the stdlib (DESIGN.md layer rules)."""

from .imap import render_imap
from .limits import MimeLimitError, MimeLimits
from .message import ParsedMessage, parse_message
from .text import decode_words

__all__ = ["parse_message", "ParsedMessage", "MimeLimits", "MimeLimitError", "render_imap",
           "decode_words"]
