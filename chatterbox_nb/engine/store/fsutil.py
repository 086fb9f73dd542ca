"""Atomic folder publication under a file lock (after huggingface_hub's file_download).

A folder is built under a temporary name unique to this process, fsynced, then
renamed into place in one step, so a crash at any point leaves either no entry or a
complete one. The lock only saves a second process from building the same thing;
correctness rests on the rename. A final path is never written into, because a
kernel may have its files memory-mapped.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from ...errors import CacheError

INCOMPLETE = ".incomplete"
# Temporary folders older than this belong to a process that died mid-build.
STALE_AFTER_S = 6 * 3600


# Out of disk space (or quota, or read-only): nothing a retry fixes, only the user.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def no_room(exc: BaseException) -> str | None:
    """Why `exc` means the disk cannot take our files (its strerror), or None. Writers
    that are not Python's (safetensors' Rust `SafetensorError`) keep the OS error only
    in their message: `IoError(Os { code: 28, ... })`."""
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)) if exc.errno in NO_ROOM else None
    text = str(exc)
    for code in sorted(NO_ROOM):
        if f"Os {{ code: {code}," in text or os.strerror(code) in text:
            return os.strerror(code)
    return None


@contextlib.contextmanager
def room_for(folder: Path, what: str) -> Iterator[None]:
    """A full (or read-only) disk while writing `what` under `folder` is one `CacheError`
    sentence; any other failure passes unchanged. Put it around `building` (whose
    cleanup runs first), so no partial files stay either."""
    try:
        yield
    except Exception as exc:
        why = no_room(exc)
        if why is None:
            raise
        raise CacheError(
            f"Cannot write {what} in {folder} ({why}): free some space, or set %config Chatterbox.cache_dir "
            "(or CHATTERBOX_NB_CACHE_DIR) to a folder with room."
        ) from None


def sha256_file(path: Path) -> str:
    """The file's sha256; hashlib releases the GIL on large reads, so several files
    hash in parallel threads."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def lock_for(final: Path) -> FileLock:
    final.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(final.parent / f".{final.name}.lock"))


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """`data` at `path`, or the old file, whatever happens: a unique temporary name,
    fsync, rename. Callers hold `path`'s lock, so dead writers' temporaries are swept."""
    clean_stale(path.parent, own=path.name)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{INCOMPLETE}")
    try:
        tmp.write_bytes(data)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fsync_file(path)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale(parent: Path, max_age_s: float = STALE_AFTER_S, own: str | None = None) -> list[Path]:
    """Remove what builds that died left behind; returns what it removed.

    `own` names the entry whose lock the caller holds: no live process can be building
    it, so its temporary folders go whatever their age (a kill mid-build otherwise left
    gigabytes for hours). Others' go only once older than any build takes."""
    removed = []
    if not parent.is_dir():
        return removed
    now = time.time()
    for path in parent.glob(f".*{INCOMPLETE}"):
        with contextlib.suppress(OSError):
            mine = own is not None and path.name.startswith(f".{own}.")
            if mine or now - path.lstat().st_mtime > max_age_s:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()
                removed.append(path)
    return removed


def retire(folder: Path) -> None:
    """Delete a published folder: renamed aside first, so no reader ever sees it half
    deleted; unlinking keeps any mapping by a running kernel valid (the inodes live on)."""
    if folder.is_symlink():  # never followed: the link goes, not what it points at
        folder.unlink()
    elif folder.exists():
        aside = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:12]}.old{INCOMPLETE}"
        os.replace(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; publish it on success.

    An existing `final` is moved aside first (never written into) and removed after
    the new one is in place.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}{INCOMPLETE}"
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        retire(final)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
