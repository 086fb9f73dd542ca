"""Compiled packages on disk, as the store sees them: which scratch folders are left over
from killed builds. (Building and loading packages is generation's `compiled`; clearing the
cache needs only this, so the store does not import generation.)"""

from __future__ import annotations

import time
from pathlib import Path

from filelock import Timeout

from . import fsutil
from .layout import CacheLayout


def leftovers(root: Path, model: str | None = None) -> list[Path]:
    """Scratch folders of package builds that are not running (killed ones): those whose
    package nobody holds the lock of, and the older releases' `.build-*` folders once
    older than any build takes."""
    found = []
    for folder in sorted(CacheLayout(root).compiled.glob("torch-*/.*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        if folder.name.startswith(".build-"):  # named by mkdtemp: no package to ask
            if model is None and time.time() - folder.stat().st_mtime > fsutil.STALE_AFTER_S:
                found.append(folder)
            continue
        if not folder.name.endswith(fsutil.INCOMPLETE):
            continue
        package = folder.parent / folder.name[1:].rsplit(".", 2)[0]
        if model is not None and not package.name.startswith(f"estimator-{model}-"):
            continue
        if not _building(package):
            found.append(folder)
    return found


def _building(package: Path) -> bool:
    """Whether some process holds the package's lock now (a build in progress)."""
    lock = fsutil.lock_for(package)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
