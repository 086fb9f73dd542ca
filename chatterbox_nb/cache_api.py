"""`cnb.cache` and `%chatterbox cache`: what the disk cache holds, checking it, clearing it."""

from __future__ import annotations

import html
from pathlib import Path

from . import config
from .engine.store.layout import CacheLayout

__all__ = ["Cache", "cache"]


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


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
        dummy_root = layout.dummies
        self.dummies = {
            p.name: sum(f.stat().st_size for f in p.iterdir())
            for p in (sorted(dummy_root.iterdir()) if dummy_root.is_dir() else [])
            if p.is_dir() and not p.name.startswith(".")
        }
        #: compiled S3Gen estimators (`--warmup full`), by path under the cache dir
        self.packages = {str(p.relative_to(root)): p.stat().st_size for p in layout.compiled_packages()}
        #: scratch folders of package builds that were killed (`cache clear` removes them)
        self.leftovers = {str(p.relative_to(root)): _tree_bytes(p) for p in packages.leftovers(root)}
        conds_root = layout.conds
        self.voice_bytes = sum(f.stat().st_size for f in conds_root.rglob("*.safetensors")) if conds_root.is_dir() else 0

    def __repr__(self) -> str:
        lines = [f"disk cache {self.root}: {len(self.entries)} model entr{'y' if len(self.entries) == 1 else 'ies'}"]
        for e in self.entries:
            lines.append(
                f"  {e['entry']}: {e['model']} {e['dtype']} from {e['source']}, own {_gib(e['own_bytes'])}, "
                f"shared with source {_gib(e['shared_bytes'])}"
            )
        for name, size in self.dummies.items():
            lines.append(f"  dummy checkpoint {name}: {_gib(size)}")
        for name, size in self.packages.items():
            lines.append(f"  compiled package {name}: {_gib(size)}")
        for name, size in self.leftovers.items():
            lines.append(f"  unfinished package build {name}: {_gib(size)} (cache clear removes it)")
        lines.append(f"  voice conditionals: {self.voice_bytes / 2**20:.2f} MiB")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(e['entry'])}</td><td>{e['model']}</td><td>{e['dtype']}</td><td>{e['source']}</td>"
            f"<td>{_gib(e['own_bytes'])}</td><td>{_gib(e['shared_bytes'])}</td></tr>"
            for e in self.entries
        )
        rows += "".join(
            f"<tr><td>dummy/{html.escape(n)}</td><td colspan=3>dummy checkpoint (a source)</td>"
            f"<td>{_gib(s)}</td><td></td></tr>"
            for n, s in self.dummies.items()
        )
        rows += "".join(
            f"<tr><td>{html.escape(n)}</td><td colspan=3>compiled S3Gen estimator</td><td>{_gib(s)}</td><td></td></tr>"
            for n, s in self.packages.items()
        )
        rows += "".join(
            f"<tr><td>{html.escape(n)}</td><td colspan=3>unfinished package build (cache clear removes it)</td>"
            f"<td>{_gib(s)}</td><td></td></tr>"
            for n, s in self.leftovers.items()
        )
        rows += f"<tr><td>voices/conds</td><td colspan=3>voice conditionals</td><td>{self.voice_bytes / 2**20:.2f} MiB</td><td></td></tr>"
        return (
            f'<div style="font:12px sans-serif"><b>disk cache</b> <code>{html.escape(str(self.root))}</code>'
            "<table><tr><th>entry</th><th>model</th><th>dtype</th><th>source</th><th>own</th>"
            f"<th>shared with source</th></tr>{rows}</table></div>"
        )


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
