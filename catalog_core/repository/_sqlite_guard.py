"""Read a WAL-mode SQLite file SQLite cannot read in place, exactly, though others may write it.

SQLite reads a WAL database through its ``-wal`` and ``-shm`` files, which it must create where
the process may not (a read-only mount, a directory it may not write) when the database was
closed cleanly. The one other way SQLite offers, ``immutable=1``, takes no lock and watches for
no change: were another process (the file's owner, a read-write view of the same mount) to write
meanwhile, such a reader would keep serving what it read first, or read pages torn by a
checkpoint. (``locking_mode=EXCLUSIVE``, which spares a WAL reader the ``-shm``, needs a write
lock that a file opened read-only cannot take: SQLite answers ``SQLITE_IOERR_LOCK``.)

A :class:`Guard` makes the immutable reading exact. It holds a read lock on the database's
SHARED byte range, the lock every SQLite reader holds. No writer in WAL mode needs more to write
or to checkpoint, but each one first makes the ``-shm`` file (its index of the log), and only
removes it, with the ``-wal``, under the EXCLUSIVE lock that the guard keeps it from taking;
writers that need that lock to write at all (a rollback journal, ``locking_mode=EXCLUSIVE``)
wait. So while the guard is held, a read after which there is still no ``-shm``, the ``-wal`` as
it was and the database the same file, read the file as it is: no writer came. Otherwise the
reader reads again, through SQLite's own read-only WAL reading, which the writer's ``-wal``
and ``-shm`` now allow.

The lock is an open file description lock (``F_OFD_SETLK``, Linux 3.15): a POSIX record lock of
the process would be released as soon as any connection of the process closed the same file.
Without it (other systems), :meth:`Guard.take` returns ``None``.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Guard"]

# SQLite's unix locking bytes: PENDING_BYTE is at 1 GiB, the SHARED range starts two bytes later.
_SHARED_FIRST: Final = 0x40000000 + 2
_SHARED_SIZE: Final = 510
_OFD_SETLK: Final = getattr(fcntl, "F_OFD_SETLK", None)
_Stat = tuple[int, int, int, int] | None


def _stat(path: str) -> _Stat:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Guard:
    """A read lock on a database file, and what its ``-wal`` and ``-shm`` were when taken."""

    def __init__(self, path: str, fd: int) -> None:
        self._path = path
        self._fd: int | None = fd
        st = os.fstat(fd)
        self._file = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._seen = self._now()

    def _now(self) -> tuple[_Stat, _Stat, _Stat]:
        return _stat(self._path), _stat(f"{self._path}-wal"), _stat(f"{self._path}-shm")

    @classmethod
    def take(cls, path: str, timeout: float) -> Guard | None:
        """Lock ``path`` for reading and note its ``-wal`` and ``-shm``.

        Returns:
            The guard, or ``None`` where the system has no open file description locks.

        Raises:
            TimeoutError: a writer held the database's EXCLUSIVE lock for ``timeout`` seconds.
            OSError: the file cannot be opened.
        """
        if _OFD_SETLK is None:
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            lock = struct.pack("hhqqi", fcntl.F_RDLCK, os.SEEK_SET, _SHARED_FIRST, _SHARED_SIZE, 0)
            lock += bytes(-len(lock) % 8)  # struct flock's trailing padding
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.fcntl(fd, _OFD_SETLK, lock)
                    break
                except OSError as exc:
                    if exc.errno in (errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP):
                        os.close(fd)  # no such locks here (an old kernel, a network file system)
                        return None
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"the SQLite database stayed locked for {timeout} s"
                        ) from None
                    time.sleep(0.01)
            return cls(path, fd)
        except BaseException:
            os.close(fd)
            raise

    @property
    def usable(self) -> bool:
        """Whether the file alone holds every commit: no ``-shm``, and no ``-wal`` or an empty one.

        Also that the path still names the locked file.
        """
        database, log, index = self._seen
        return database == self._file and index is None and (log is None or log[2] == 0)

    @property
    def log_without_index(self) -> bool:
        """Whether a ``-wal`` that may hold commits has no ``-shm``: SQLite cannot read it here."""
        _, log, index = self._seen
        return log is not None and log[2] > 0 and index is None

    def unchanged(self) -> bool:
        """Whether no writer came since the guard was taken (``False`` once released)."""
        return self._fd is not None and self._now() == self._seen

    def release(self) -> None:
        """Drop the lock (closing the only descriptor of its open file description)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
