"""Where everything lives in the cache dir; the one place its folder names are spelled.

    <cache_dir>/models/<model>-<dtype>-<key>/   disk-cache entries (diskcache.py)
    <cache_dir>/dummy/<model>-<size>-seed<n>/   dummy checkpoints (dummy.py)
    <cache_dir>/voices/voices.json              the voice registry (voice_registry.py)
    <cache_dir>/voices/conds/<model>-<key>/     voice conditionals (voices/conditionals.py)
    <cache_dir>/compiled/torch-<version>/estimator-<model>-...pt2
                                                compiled S3Gen estimators (compiled.py)
    <cache_dir>/locks/batch-<hash>.lock         one batch per output folder (batching/run.py)

Every module that touches the cache dir asks a `CacheLayout` for its paths, so moving
or adding a folder is one change here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


class CacheLayout:
    """The paths under one cache dir (nothing is created here)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        #: the disk-cache entries, one folder a model, dtype and source
        self.models = self.root / "models"
        #: our own random-weight checkpoints, in the official layout
        self.dummies = self.root / "dummy"
        self.voices = self.root / "voices"
        #: the registered voices (name -> audio files and their sha256)
        self.registry = self.voices / "voices.json"
        #: voice conditionals, one folder a model and weight source
        self.conds = self.voices / "conds"
        #: AOTInductor packages of S3Gen's estimator, a folder per torch version (their
        #: generated code is only good for the torch that made it)
        self.compiled = self.root / "compiled"
        #: lock files that belong in no user folder
        self.locks = self.root / "locks"

    def entry(self, model: str, dtype: str, key: str) -> Path:
        """A disk-cache entry's folder; `key` is the hash of what the entry depends on."""
        return self.models / f"{model}-{dtype}-{key}"

    def conds_folder(self, model: str, key: str) -> Path:
        """One model and weight source's voice conditionals."""
        return self.conds / f"{model}-{key}"

    def dummy(self, model: str, size: str = "full", seed: int = 0) -> Path:
        return self.dummies / f"{model}-{size}-seed{seed}"

    def dummy_folders(self) -> list[Path]:
        """The dummy checkpoints made so far (not the temporary folders of ones being made)."""
        if not self.dummies.is_dir():
            return []
        return [p for p in sorted(self.dummies.iterdir()) if p.is_dir() and not p.name.startswith(".")]

    def batch_lock(self, out_dir: Path) -> Path:
        """The lock of a batch's output folder, keyed by its resolved path: the user's
        folder holds only the WAVs and the manifest."""
        key = hashlib.sha256(str(Path(out_dir).resolve()).encode("utf-8")).hexdigest()[:16]
        return self.locks / f"batch-{key}.lock"

    def compiled_package(self, torch_version: str, model: str, tag: str) -> Path:
        """A package's file; `tag` tells apart the packages of one model (compiled.py)."""
        return self.compiled / f"torch-{torch_version}" / f"estimator-{model}-{tag}.pt2"

    def compiled_packages(self, model: str | None = None) -> list[Path]:
        """The packages of `model` (or all), for every torch version."""
        return sorted(self.compiled.glob(f"torch-*/estimator-{model + '-' if model else ''}*.pt2"))

    @staticmethod
    def compiled_verdict(package: Path) -> Path:
        """Whether `package` paid here, measured once: beside it, keyed as it is (it outlives
        a losing package, so that no later warm-up builds it again)."""
        return package.with_suffix(".json")

    def compiled_verdicts(self, model: str | None = None) -> list[Path]:
        """The verdicts of `model`'s packages (or all), for every torch version."""
        return sorted(self.compiled.glob(f"torch-*/estimator-{model + '-' if model else ''}*.json"))

    def per_model(self) -> tuple[Path, ...]:
        """The folders whose subfolders are named `<model>-...` (what `cache clear` removes);
        the registry is not among them: conditionals are recomputed on use, voices are not."""
        return (self.models, self.dummies, self.conds)
