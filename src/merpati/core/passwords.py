"""Password hashing: argon2id through argon2-cffi.

Parameters follow OWASP's argon2id minimum (19 MiB, t=2, p=1). Measured here, one verify costs
about 45 ms (the library defaults cost ~0.8 s, too slow for an IMAP LOGIN storm). The encoded
hash records its own parameters (``$argon2id$v=19$m=19456,t=2,p=1$...``), so raising them later
only needs ``needs_rehash`` at the next successful login.

Unknown users: call ``dummy_verify(password)`` so that a login for a missing account costs the
same as one with a wrong password (no user enumeration by timing).
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MEMORY_COST_KIB = 19_456
TIME_COST = 2
PARALLELISM = 1

# PasswordHasher is immutable after construction: sharing one instance is not mutable state.
_HASHER = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM, type=Type.ID
)
# A hash of a discarded random secret, made with the parameters above (a test checks they
# match), so dummy_verify costs what a real verify costs without hashing at import time.
_DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$98Iw2MxoPaQdeDoU68b6Nw$xICMJlLjwohWhGQ+scLtyxu7TS2KBU9zPvyA2XSIX2U"
)


def hash_password(password: str) -> str:
    """Return an encoded argon2id hash (salt and parameters included)."""
    return _HASHER.hash(password)


def verify_password(encoded: str, password: str) -> bool:
    """True when ``password`` matches ``encoded``; False on mismatch or on any malformed hash."""
    try:
        return _HASHER.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    except (ValueError, TypeError):
        return False


def needs_rehash(encoded: str) -> bool:
    """True when the hash was made with other parameters (or is not a valid argon2 hash)."""
    try:
        return _HASHER.check_needs_rehash(encoded)
    except (InvalidHashError, ValueError, TypeError):
        return True


def dummy_verify(password: str = "") -> None:
    """Spend the time of one verify; for logins naming an unknown user."""
    verify_password(_DUMMY_HASH, password)
