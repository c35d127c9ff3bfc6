"""Limits for the MIME parser (SECURITY-CASES MIME-01..MIME-06, IMAP-13).

Bombs that must be refused raise :class:`MimeLimitError`; everything else is
parsed leniently.  Soft limits (address count, parameter count) silently drop
the excess, as Postfix's ``header_address_token_limit`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MimeLimits", "MimeLimitError"]


class MimeLimitError(ValueError):
    """The message is a MIME bomb and must be refused (SMTP 552 / IMAP NO)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MimeLimits:
    # Hard limits: exceeding them raises MimeLimitError.
    max_depth: int = 100                      # Postfix mime_nesting_limit
    max_parts: int = 10_000                   # Stalwart max_parts
    max_header_field: int = 1 << 20           # one header field, bytes
    max_header_total: int = 10 << 20          # all header fields of one part
    # Soft limits: the excess is dropped.
    max_addresses: int = 10_240               # per address header (Postfix)
    max_params: int = 100                     # Content-Type/-Disposition params
    max_boundary: int = 200                   # longer boundary: not multipart
    preview_input: int = 4096                 # encoded bytes decoded for preview
    preview_chars: int = 200
