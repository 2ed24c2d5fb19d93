"""Advisory file locks (``fcntl.flock``) that die with their process: the store lock and writer locks.

A lock file holds one line of JSON naming its holder (pid, host, start time, a random build token).
The kernel releases a ``flock`` when its process dies, however it dies, so "is the lock held" is the
only liveness test needed: no pid files to go stale, no pid reuse to fool. Lock files are never
rewritten by store creation and never deleted while they may be held.

- :class:`FileLock` is the store lock ``<store>/.build.lock`` (one build driver at a time) and each
  sequence writer's ``<split>/.<sequence>.tmp-<...>.lock`` (held from before its temporary group exists
  until after the rename, so a temporary group whose lock is free belongs to a dead writer).
- :func:`watching_driver` runs in a build worker: it ends the worker's process once the driver that
  started it is gone (its lock free, or held by another build), so no worker outlives its driver.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cpgd_bench.store.errors import StoreError

#: How often a build worker checks that its driver still holds the store lock (seconds).
WATCH_INTERVAL = 0.25
#: How long a new lock holder retries while the lock is only probed (a worker checking its driver).
PROBE_GRACE = 2.0


def holder_info() -> dict[str, Any]:
    """This process as a lock holder: pid, host, start time and a fresh random token."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "token": secrets.token_hex(8)}  # fmt: skip


def describe(info: dict[str, Any] | None) -> str:
    """``process 123 on host h since T`` (or ``an unknown process``) for error messages."""
    if not info:
        return "an unknown process"
    return f"process {info.get('pid')} on host {info.get('host')} since {info.get('since')}"


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder recorded in lock file ``path`` (None when missing, empty or unreadable)."""
    try:
        info = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_held(path: Path) -> bool:
    """Whether some live process holds the lock file ``path`` (False when the file does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path``; the file records this process as holder.

    ``what`` names the locked thing in the one-line error raised when another live process holds it.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.info = holder_info()
        deadline = time.monotonic() + PROBE_GRACE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = read_holder(path)
                if _alive_elsewhere(holder) or time.monotonic() > deadline:
                    raise StoreError(
                        f"{what} is being written by {describe(holder)} (lock {path}); wait for it to finish, "
                        "or stop that process"
                    ) from None
                time.sleep(0.05)  # a dead holder's lock is only probed by a worker watching it: retry
                continue
            if _same_file(fd, path):
                break
            os.close(fd)  # a cleaner unlinked the file between our open and flock: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(self.info).encode())
        self._fd: int | None = fd

    @property
    def token(self) -> str:
        """The random token of this hold (workers compare it to know their driver is still the holder)."""
        return str(self.info["token"])

    def release(self, unlink: bool = False) -> None:
        """Release the lock; ``unlink`` removes the file first (only for locks of one-off writers)."""
        if self._fd is None:
            return
        if unlink:
            self.path.unlink(missing_ok=True)
        else:
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not unlinked or replaced)."""
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _alive_elsewhere(holder: dict[str, Any] | None) -> bool:
    """True when ``holder`` is a live process on this host (so the lock is really held, not just probed)."""
    if not holder or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def driver_alive(lock: Path, token: str) -> bool:
    """Whether the build driver that took ``lock`` with ``token`` still holds it."""
    holder = read_holder(lock)
    return bool(holder) and holder.get("token") == token and is_held(lock)


@contextlib.contextmanager
def watching_driver(lock: Path, token: str, on_lost: Callable[[], None]) -> Iterator[None]:
    """Inside the block, end this process as soon as the build driver holding ``lock`` with ``token`` is gone.

    A daemon thread (one per process, started on first use) checks every ``WATCH_INTERVAL`` seconds;
    when a watched driver is gone it runs every ``on_lost`` (e.g. to remove scratch files) and exits the
    process at once (``os._exit``): its writer locks are released and the next build removes its
    temporary groups. From its start on, the thread also ends the process when its parent process dies
    (an idle loky worker whose driver was killed), so no worker process outlives its driver.
    """
    key = object()
    with _watch_guard:
        _watches[key] = (lock, token, on_lost)
        if not _watch_thread:
            parent = os.getppid()
            _watch_thread.append(threading.Thread(target=_watch_loop, args=(parent,), name="cpgd-driver-watch",
                                                  daemon=True))  # fmt: skip
            _watch_thread[0].start()
    try:
        yield
    finally:
        with _watch_guard:
            del _watches[key]


_watch_guard = threading.Lock()
_watches: dict[object, tuple[Path, str, Callable[[], None]]] = {}
_watch_thread: list[threading.Thread] = []


def _watch_loop(parent: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL)
        with _watch_guard:
            watches = list(_watches.values())
        if os.getppid() == parent and all(driver_alive(lock, token) for lock, token, _ in watches):
            continue
        for _, _, on_lost in watches:
            with contextlib.suppress(Exception):
                on_lost()
        os._exit(70)
