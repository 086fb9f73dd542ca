"""Where everything lives in the cache dir; the one place its folder names are spelled.

    <cache_dir>/models/<model>-<dtype>-<key>/   disk-cache entries (diskcache.py)
    <cache_dir>/dummy/<model>-<size>-seed<n>/   dummy checkpoints (dummy.py)
    <cache_dir>/voices/voices.json              the voice registry (voices_api.py)
    <cache_dir>/voices/conds/<model>-<key>/     voice conditionals (voices.py)

Every module that touches the cache dir asks a `CacheLayout` for its paths, so moving
or adding a folder is one change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CacheLayout:
    root: Path

    @property
    def models(self) -> Path:
        """The disk-cache entries, one folder a model, dtype and source."""
        return self.root / "models"

    @property
    def dummies(self) -> Path:
        """Our own random-weight checkpoints, in the official layout."""
        return self.root / "dummy"

    @property
    def voices(self) -> Path:
        return self.root / "voices"

    @property
    def registry(self) -> Path:
        """The registered voices (name -> audio files and their sha256)."""
        return self.voices / "voices.json"

    @property
    def conds(self) -> Path:
        """Voice conditionals, one folder a model and weight source."""
        return self.voices / "conds"

    def dummy(self, model: str, size: str = "full", seed: int = 0) -> Path:
        return self.dummies / f"{model}-{size}-seed{seed}"

    def per_model(self) -> tuple[Path, ...]:
        """The folders whose subfolders are named `<model>-...` (what `cache clear` removes);
        the registry is not among them: conditionals are recomputed on use, voices are not."""
        return (self.models, self.dummies, self.conds)
