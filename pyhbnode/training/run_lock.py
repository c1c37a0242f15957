"""One training process per directory: a lock file holding the owner's pid and host.

``RunLock(directory)`` creates ``directory/.pyhbnode.lock`` with ``O_EXCL`` (atomic on local
and NFSv3+ file systems) and removes it on release.  A lock whose owner is gone — same host,
no process with that pid (or one started at another time, i.e. the pid was reused) — is stale
and taken over; any other lock raises :class:`~pyhbnode.training.errors.RunLocked` at once,
naming the owner.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .errors import RunLocked

__all__ = ["RunLock", "LOCK_NAME", "process_alive"]

LOCK_NAME = ".pyhbnode.lock"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5); the name field is cut off above
    except (OSError, IndexError):
        return None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` (started at ``start``, if known) runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by somebody else
        pass
    if start is not None:
        now = _start_time(pid)
        if now is not None and now != start:
            return False  # the pid was reused by a later process
    return True


class RunLock:
    """Hold ``directory``'s lock while training into it (a context manager)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.held = False

    def _record(self) -> dict[str, Any]:
        pid = os.getpid()
        return {"pid": pid, "host": socket.gethostname(), "start": _start_time(pid), "since": time.time()}

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable or half-written

    def _stale(self, owner: dict[str, Any]) -> bool:
        if not owner:  # empty or garbage: a writer killed between create and write, if it is old
            try:
                return time.time() - self.path.stat().st_mtime > 10.0
            except FileNotFoundError:
                return True
        if owner.get("host") != socket.gethostname():
            return False  # another machine's process: cannot be checked from here
        pid = owner.get("pid")
        return not (isinstance(pid, int) and process_alive(pid, owner.get("start")))

    def acquire(self) -> RunLock:
        data = json.dumps(self._record()).encode()
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._read()
                if owner is None:
                    continue  # released meanwhile: try again
                if not self._stale(owner):
                    since = owner.get("since")
                    when = (
                        time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since))
                        if isinstance(since, (int, float))
                        else ""
                    )
                    who = (
                        f"process {owner.get('pid')} on host {owner.get('host')}{when}"
                        if owner
                        else "another process (its lock file is still being written)"
                    )
                    raise RunLocked(
                        f"{self.directory} is in use: {who} is training into it (lock file {self.path}). Wait for "
                        "it to finish or choose another directory; if no such process runs, delete the lock file."
                    ) from None
                # Stale: move it aside atomically, so of two processes taking over only one wins.
                aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
                try:
                    os.replace(self.path, aside)
                except FileNotFoundError:
                    continue
                try:
                    moved = json.loads(aside.read_text())
                except (OSError, ValueError):
                    moved = {}
                if moved != owner:  # another process took over first: put its live lock back
                    try:
                        os.link(aside, self.path)
                    except OSError:
                        pass
                aside.unlink(missing_ok=True)
                continue
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return self
        raise RunLocked(f"could not take the lock {self.path}: other processes keep taking it")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = self._read()
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
