"""POP3 maildrop locks for the SQLite store: one ``flock`` per account, beside the database.

``<db>.locks/maildrop-<account id>`` is opened and locked with ``LOCK_EX | LOCK_NB`` for as long
as a POP3 session holds the maildrop. ``flock`` locks belong to the open file description, so
they exclude each other between processes (MX workers, a second daemon on the same file, the
CLI) and between two stores or two sessions in one process alike, and the kernel drops them
when the holder's process dies: a crashed holder never blocks the maildrop. Nothing is written
to the database, so taking the lock costs no fsync. The files stay (empty) after release:
unlinking a lock file could let two sessions lock two different files of the same name.
"""

from __future__ import annotations

import fcntl
import os
import weakref

from merpati.storage.api import InvalidInput, TemporaryStoreError


class FileMaildropLock:
    """A held maildrop lock (``MaildropLock``); ``release()`` closes the file."""

    def __init__(self, account_id: int, fd: int) -> None:
        self.account_id = account_id
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock

    def __del__(self) -> None:  # a forgotten lock must not outlive its session object
        self._close()

    async def __aenter__(self) -> FileMaildropLock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()


class FileMaildropLocks:
    def __init__(self, db_path: str) -> None:
        self.folder = db_path + ".locks"
        self._held: weakref.WeakSet[FileMaildropLock] = weakref.WeakSet()

    def close(self) -> None:
        """Release every lock still held through this store (the store is closing)."""
        for lock in list(self._held):
            lock._close()

    def try_lock(self, account_id: int) -> FileMaildropLock | None:
        if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id < 1:
            raise InvalidInput(f"invalid account id {account_id!r}")
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            fd = os.open(
                os.path.join(self.folder, f"maildrop-{account_id}"),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
                0o600,
            )
        except OSError as exc:
            raise TemporaryStoreError(f"maildrop lock: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise TemporaryStoreError(f"maildrop lock: {exc}") from exc
        lock = FileMaildropLock(account_id, fd)
        self._held.add(lock)
        return lock
