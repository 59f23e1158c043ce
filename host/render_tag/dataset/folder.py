"""OUT, the dataset folder: one writer at a time, and nothing written or deleted outside it.

`hold_folder` is the one way a command takes OUT. It checks that `-o` names a folder or a new path
(never a file, a device or a FIFO), creates it, takes an exclusive OS lock on `OUT/.render-tag.lock`
and records the holder there (host, pid, start time, command) for the message a second writer gets.
The OS lock (flock) is the authority: a crash releases it, so a lock file left by a dead run is taken
over (and `FolderLock.took_over` says whose it was); a live holder makes the second writer bad input
(exit 2) naming it.

Symbolic links inside OUT are refused, not replaced: a link is something a person made on purpose,
render-tag cannot tell a mistake from a trick, and refusing leaves their files as they were. Every
writer and deleter (host and workers) works on paths under OUT, so once OUT holds no link and one
writer holds it, no write or delete can land outside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from render_tag_shared.errors import InputError

__all__ = [
    "LOCK_NAME",
    "FolderLock",
    "Holder",
    "check_output_file",
    "check_output_folder",
    "find_links",
    "hold_folder",
]

LOCK_NAME = ".render-tag.lock"
"""The lock file in OUT; present only while a command holds the folder (or after a crash)."""

_HELD: dict[Path, FolderLock] = {}
"""Folders this process holds (by real path): holding one again nests instead of refusing ourselves."""


@dataclass(frozen=True)
class Holder:
    """Who holds a folder, as recorded in its lock file."""

    host: str
    pid: int
    started_at: float
    command: str = ""

    @classmethod
    def me(cls, command: str) -> Holder:
        return cls(host=socket.gethostname(), pid=os.getpid(), started_at=time.time(), command=command)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            host, pid, started_at = str(data["host"]), int(data["pid"]), float(data["started_at"])
            return cls(host, pid, started_at, str(data.get("command", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        what = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on host {self.host}, since {since}{what}"

    def gone(self) -> str | None:
        """Why this holder cannot be holding the lock any more (we got the OS lock), for the message."""
        if self.host != socket.gethostname():
            return "that run ended without removing its lock file"
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return "that process is gone"
        except PermissionError:
            pass
        return "that process no longer holds it"


@dataclass
class FolderLock:
    """A folder held by this process: who we are, and whose stale lock we took over (if any)."""

    folder: Path
    holder: Holder
    took_over: Holder | None = None
    reason: str | None = None

    def note(self) -> str | None:
        """The sentence to tell the user when a stale lock was taken over."""
        if self.took_over is None:
            return None
        return (
            f"{self.folder / LOCK_NAME}: took over a stale lock of {self.took_over.describe()}: {self.reason}"
        )


_KINDS = {
    stat.S_IFREG: "a file",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a folder")


def _nearest_existing(path: Path) -> tuple[Path, os.stat_result]:
    """The path itself or its nearest ancestor that exists, with its stat (links followed)."""
    probe = path
    while True:
        try:
            return probe, os.stat(probe)
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                raise
            probe = probe.parent


def check_output_folder(out: str | Path, option: str = "-o") -> Path:
    """`-o` names a folder, or a new path whose nearest existing ancestor is a folder; InputError else.

    Writes nothing. The path given may itself be a link to a folder (the user's own choice); links
    inside it are `find_links`' business.
    """
    if str(out).strip() == "":
        raise InputError(option, "", "is empty: name the output folder")
    path = Path(out)
    try:
        found, info = _nearest_existing(path)
    except OSError as exc:
        raise InputError(str(path), "", f"cannot be used as the output folder: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        return path
    if found == path:
        raise InputError(
            str(path), "", f"exists and is {_kind(info.st_mode)}: {option} must name a folder or a new path"
        )
    raise InputError(str(path), "", f"cannot be created: {found} is {_kind(info.st_mode)}, not a folder")


def check_output_file(path: str | Path, option: str = "-o") -> Path:
    """An output file is a regular file to replace or a new path in a folder; never a device, a FIFO,
    a socket or a folder (writing one would replace the node)."""
    if str(path).strip() == "":
        raise InputError(option, "", "is empty: name the output file")
    target = Path(path)
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        check_output_folder(target.parent, option)
        return target
    except OSError as exc:
        raise InputError(str(target), "", f"cannot be written: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(str(target), "", f"is a folder: {option} must name a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            str(target), "", f"exists and is {_kind(info.st_mode)}: {option} must name a file or a new path"
        )
    return target


def find_links(folder: Path) -> list[Path]:
    """Every symbolic link under `folder` (none followed), in a stable order."""
    links: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_symlink():
                links.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
    return sorted(links)


def _refuse_links(folder: Path) -> None:
    links = find_links(folder)
    if not links:
        return
    first = links[0]
    more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
    raise InputError(
        str(first),
        "",
        f"is a symbolic link (to {os.readlink(first)}){more}: render-tag writes and deletes only inside "
        f"{folder} and never follows a link out of it; remove the link",
    )


def _read_holder(fd: int) -> Holder | None:
    """The holder recorded in the lock file (retried briefly: a new holder writes it just after locking)."""
    for _ in range(20):
        holder = Holder.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if holder is not None:
            return holder
        time.sleep(0.05)
    return None


def _open_lock(path: Path) -> int:
    """The lock file, created if needed, never through a link and never anything but a regular file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            target = os.readlink(path)
            raise InputError(
                str(path), "", f"is a symbolic link (to {target}): remove it; render-tag never follows one"
            ) from None
        raise InputError(str(path.parent), "", f"cannot be written: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(str(path), "", "is not a regular file: remove it")
    return fd


def _acquire(path: Path) -> tuple[int, Holder | None]:
    """Opens and locks the lock file; (fd, the holder recorded there before us). InputError when held.

    A holder that finished removes the file after we opened it: locking that unlinked file would lock
    nothing, so the file must still be the one at `path` once locked, or we try again.
    """
    for _ in range(50):
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            who = holder.describe() if holder is not None else "another process (not yet recorded)"
            raise InputError(
                str(path.parent),
                "",
                f"another render-tag holds this folder: {who}. One writer at a time: wait for it to "
                f"finish, or use another folder (lock file {path})",
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd, Holder.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        os.close(fd)
    raise InputError(str(path), "", "the lock file keeps changing under us: is another render-tag starting?")


def _write_holder(fd: int, holder: Holder) -> None:
    data = json.dumps(asdict(holder)).encode() + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _make_folders(path: Path) -> list[Path]:
    """Creates `path` and its missing parents; the folders created, outermost first."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    created: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_folders(created)
            raise InputError(str(path), "", f"cannot be created: {exc.strerror}") from None
        created.append(folder)
    return created


def _remove_folders(created: list[Path]) -> None:
    """Removes folders we created that are still empty (a refused command leaves nothing behind)."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def hold_folder(
    out: str | Path,
    *,
    command: str | None = None,
    create: bool = True,
    writes: bool = True,
    option: str = "-o",
) -> Iterator[FolderLock]:
    """Holds OUT for one command: the only writer, with no link inside.

    `create`: OUT may be new (render, run, merge's destination); otherwise it must exist (audit,
    verify, preview). `writes`: refuse symbolic links inside (a folder only read, such as a merge
    source, is locked but may hold links). InputError (exit 2) for a bad `-o`, a link, or a live
    holder; folders this call created are removed again when they end up empty.
    """
    path = check_output_folder(out, option)
    if not create and not path.is_dir():
        raise InputError(str(path), "", "not a dataset folder")
    key = path.resolve()
    if key in _HELD:
        if writes:
            _refuse_links(path)
        yield _HELD[key]
        return
    created = _make_folders(path)
    lock_path = path / LOCK_NAME
    try:
        fd, previous = _acquire(lock_path)
    except BaseException:
        _remove_folders(created)
        raise
    me = Holder.me(command if command is not None else " ".join(["render-tag", *sys.argv[1:]]))
    lock = FolderLock(folder=path, holder=me)
    if previous is not None:
        lock.took_over, lock.reason = previous, previous.gone()
    try:
        _write_holder(fd, me)
        if writes:
            _refuse_links(path)
        _HELD[key] = lock
        yield lock
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            if os.stat(lock_path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                lock_path.unlink()
        os.close(fd)
        _remove_folders(created)
