"""POP3 sessions (RFC 1939) over the store: ``Pop3Service`` per server, ``Pop3Session`` per connection."""

from merpati.services.pop3.maildrop import Maildrop, SizeCache
from merpati.services.pop3.session import Pop3Service, Pop3Session, Pop3Settings

__all__ = ["Maildrop", "Pop3Service", "Pop3Session", "Pop3Settings", "SizeCache"]
