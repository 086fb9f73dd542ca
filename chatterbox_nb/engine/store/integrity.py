"""The full check of a disk-cache entry: every file against its recorded sha256.

Every file of an entry is hashed once: by its builder, or by the first load that
finds the entry without a stamp. The stamp (`verified.json`) records each file's
identity (inode, size, mtime); while the identities match, later loads trust the
files without reading them. A file that is rewritten, replaced, truncated or copied
elsewhere has a new identity, so its entry is hashed again before it is used.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from . import fsutil

MANIFEST = "manifest.json"
STAMP = "verified.json"


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text("utf-8"))


def verify(folder: Path) -> list[str]:
    """Every file against its recorded sha256 (the files in parallel); the problems found."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        files = read_manifest(folder)["files"]
        expected = {name: meta["sha256"] for name, meta in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [f"manifest unreadable: {exc}"]

    def check(name: str) -> str | None:
        try:
            return None if fsutil.sha256_file(folder / name) == expected[name] else f"{name} fails its sha256 check"
        except OSError as exc:
            return f"{name}: {exc.strerror or exc}"

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return [p for p in pool.map(check, sorted(expected)) if p is not None]


def identity(folder: Path) -> dict[str, list[int]]:
    """(inode, size, mtime_ns) of every file the manifest lists."""
    out = {}
    for name in read_manifest(folder)["files"]:
        st = (folder / name).stat()
        out[name] = [st.st_ino, st.st_size, st.st_mtime_ns]
    return out


def trusted(folder: Path) -> bool:
    """Whether every file is the very file that was last hashed and found good."""
    try:
        stamp = json.loads((folder / STAMP).read_text("utf-8"))
        return stamp == identity(folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def check_entry(folder: Path) -> list[str]:
    """The full check, under the entry's lock so that no rebuild can pass for damage:
    a good entry is stamped, a bad one removed. Returns the problems found."""
    with fsutil.lock_for(folder):
        problems = verify(folder)
        if problems:
            fsutil.retire(folder)
        else:
            with contextlib.suppress(OSError):
                stamp(folder)
    return problems


def stamp(folder: Path) -> None:
    """Record that the entry's files, as they are now, passed their sha256 check."""
    fsutil.write_atomic(folder / STAMP, json.dumps(identity(folder)).encode())
