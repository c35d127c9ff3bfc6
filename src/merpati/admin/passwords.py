"""Kept for the admin layer's imports: the hashing lives in ``merpati.core.passwords`` so that the
services (IMAP, POP3, submission logins) can verify without importing the admin layer."""

from merpati.core.passwords import dummy_verify, hash_password, needs_rehash, verify_password

__all__ = ["dummy_verify", "hash_password", "needs_rehash", "verify_password"]
