"""Atomic folder publication under a file lock (after huggingface_hub's file_download).

A folder is built under a temporary name unique to this process, fsynced, then
renamed into place in one step, so a crash at any point leaves either no entry or a
complete one. The lock only saves a second process from building the same thing;
correctness rests on the rename. A final path is never written into, because a
kernel may have its files memory-mapped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

from filelock import FileLock

INCOMPLETE = ".incomplete"
# Temporary folders older than this belong to a process that died mid-build.
STALE_AFTER_S = 6 * 3600


def lock_for(final: Path) -> FileLock:
    final.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(final.parent / f".{final.name}.lock"))


def fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale(parent: Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temporary folders left by builds that died; returns what it removed."""
    removed = []
    if not parent.is_dir():
        return removed
    now = time.time()
    for path in parent.glob(f".*{INCOMPLETE}"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def retire(folder: Path) -> None:
    """Delete a published folder: renamed aside first, so no reader ever sees it half
    deleted; unlinking keeps any mapping by a running kernel valid (the inodes live on)."""
    if folder.exists():
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
