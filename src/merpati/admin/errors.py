"""Admin errors: each carries one line meant for a human (the CLI prints it after ``merpati: error:``)."""

from __future__ import annotations


class AdminError(Exception):
    """Base of every error the admin layer reports to its caller."""


class InvalidInput(AdminError):
    """A malformed address, domain, mailbox name, file or option."""


class NotFoundError(AdminError):
    """The named domain, user, alias, mailbox or file does not exist."""


class ConflictError(AdminError):
    """The thing to create exists already."""
