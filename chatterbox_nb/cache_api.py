"""`cnb.cache` and `%chatterbox cache`: what the disk cache holds, checking it, clearing it."""

from __future__ import annotations

from pathlib import Path

from . import config
from .display.cache_report import cache_html, cache_text
from .engine.store.layout import CacheLayout

__all__ = ["Cache", "cache"]


def _tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


class CacheInfo:
    """Entries with their disk use; linked files are shared with their source (no extra space)."""

    def __init__(self, root: Path) -> None:
        from .engine.store import packages
        from .engine.store import diskcache

        self.root = root
        self.entries = [diskcache.describe(p) for p in diskcache.entries(root)]
        layout = CacheLayout(root)
        self.dummies = {p.name: sum(f.stat().st_size for f in p.iterdir()) for p in layout.dummy_folders()}
        #: compiled S3Gen estimators (`--warmup full`), by path under the cache dir
        self.packages = {str(p.relative_to(root)): p.stat().st_size for p in layout.compiled_packages()}
        #: scratch folders of package builds that were killed (`cache clear` removes them)
        self.leftovers = {str(p.relative_to(root)): _tree_bytes(p) for p in packages.leftovers(root)}
        conds_root = layout.conds
        self.voice_bytes = sum(f.stat().st_size for f in conds_root.rglob("*.safetensors")) if conds_root.is_dir() else 0

    def __repr__(self) -> str:
        return cache_text(self)

    def _repr_html_(self) -> str:
        return cache_html(self)


class Cache:
    """The disk weight cache of this kernel's cache dir."""

    @property
    def dir(self) -> Path:
        return config.cache_dir()

    def info(self) -> CacheInfo:
        return CacheInfo(self.dir)

    def verify(self) -> dict[str, list[str]]:
        """Check every file against its sha256; bad entries are removed (and their models
        evicted) so the next load rebuilds them. Returns {entry: problems}."""
        from .engine.store import diskcache
        from .engine.models import loader

        report = {}
        for folder in diskcache.entries(self.dir):
            report[folder.name] = diskcache.check_entry(folder)
            if report[folder.name]:
                loader.reject_entry(folder, report[folder.name])
        return report

    def clear(self, model: str | None = None) -> list[str]:
        """Delete the entries (and dummy checkpoints, voice conditionals and compiled
        packages) of `model`, or everything. Models in memory keep working: their mapped
        files and loaded packages live on until unloaded."""
        from .engine.store import diskcache
        from .options import choose_model

        if model is not None:
            model = choose_model(model).model
        return diskcache.clear(self.dir, model)

    def __repr__(self) -> str:
        return repr(self.info())


cache = Cache()
