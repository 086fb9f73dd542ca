"""The kernel-global model registry: a model is loaded at most once per kernel.

Keys are (model, weights fingerprint, device, dtype), the dtype resolved
(`precision.resolve_dtype`: never `auto`). A hit returns the same object
and costs a dictionary lookup; a miss loads under a per-key lock, so two threads
asking at once load once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from .._state import STATE
from ..errors import SourceCorrupt
from . import build, diskcache, fsutil, precision, sources
from .device import release_memory
from .specs import ModelSpec


class ModelKey(NamedTuple):
    model: str
    fingerprint: str
    device: str
    dtype: str


@dataclass(eq=False)
class LoadedModel:
    key: ModelKey
    spec: ModelSpec
    source: sources.Source
    tts: Any
    load_s: float
    nbytes: int
    #: held while the model generates: one model never runs two generations at once
    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded_at: float = field(default_factory=time.time)
    #: the disk-cache entry it was mapped from, and the background sha256 check of it
    entry: Path | None = None
    verification: threading.Thread | None = None
    verify_problems: list[str] | None = None
    #: the highest warm-up level run on this model ("off", "light", "full"), and its figures
    warmed: str = "off"
    warmup_metrics: dict[str, Any] | None = None
    #: generations run so far, and users queued for the lock (warm-up gives way to them)
    calls: int = 0
    users_waiting: int = 0

    @contextlib.contextmanager
    def use(self, *, user: bool = True) -> Iterator["LoadedModel"]:
        """Hold the model for one generation. Users go first: background work (warm-up)
        waits while anyone is queued, and takes the model only between their calls."""
        if user:
            with STATE.lock:
                self.users_waiting += 1
            try:
                self.lock.acquire()
            finally:
                with STATE.lock:
                    self.users_waiting -= 1
        else:
            while True:
                while self.users_waiting:
                    time.sleep(0.02)
                self.lock.acquire()
                if not self.users_waiting:
                    break
                self.lock.release()
        try:
            self.calls += 1
            yield self
        finally:
            self.lock.release()

    @property
    def name(self) -> str:
        return self.key.model

    @property
    def device(self) -> str:
        return self.key.device

    @property
    def dtype(self) -> str:
        return self.key.dtype

    @property
    def is_dummy(self) -> bool:
        return self.source.is_dummy


Progress = Callable[[str], None]


def _silent(stage: str) -> None:
    pass


def get_or_load(
    spec: ModelSpec,
    weights: str,
    device: str,
    dtype: str,
    cache_root: Path,
    *,
    reload: bool = False,
    progress: Progress = _silent,
) -> tuple[LoadedModel, str]:
    """The model and where it came from this time: "memory", "disk-cache", or the
    source kind when the disk-cache entry had to be built first. `dtype` is resolved
    (not `auto`); int8 maps the float32 entry and quantizes it."""
    progress("finding the weights" if not weights.startswith("dummy") else "finding (or making) the dummy weights")
    source = sources.resolve(spec, weights, cache_root)
    key = ModelKey(spec.name, source.fingerprint, device, dtype)
    with STATE.load_lock(key):
        loaded = STATE.models.get(key)
        if loaded is not None and not reload:
            return loaded, "memory"
        if loaded is not None:
            drop(key)
        start = time.perf_counter()
        progress("opening the disk cache")
        with build.gc_paused():
            stored = precision.storage_dtype(dtype)
            parts, how, entry = _parts(spec, weights, source, stored, cache_root, progress)
            progress("building the model on the meta device and mapping its weights")
            tts = build.assemble(spec, parts, device, stored)
            precision.apply(tts, dtype, device)
        loaded = LoadedModel(key, spec, source, tts, time.perf_counter() - start, build.module_bytes(tts), entry=entry)
        with STATE.lock:
            STATE.models[key] = loaded
        if how == "disk-cache":
            _verify_in_background(loaded)
        return loaded, how


def _parts(
    spec: ModelSpec, weights: str, source: sources.Source, dtype: str, root: Path, progress: Progress
) -> tuple[Any, str, Any]:
    try:
        return diskcache.open_or_build(root, spec, source, dtype, progress)
    except SourceCorrupt as exc:
        if source.kind != "dummy":
            raise
        # A dummy checkpoint can be made again, bit for bit.
        warnings.warn(f"chatterbox_nb: {exc} Rebuilding the dummy checkpoint.", diskcache.CacheWarning, stacklevel=3)
        fsutil.retire(source.folder)
        return diskcache.open_or_build(root, spec, sources.resolve(spec, weights, root), dtype, progress)


def _verify_in_background(loaded: LoadedModel) -> None:
    """Full sha256 check after the load returned."""
    entry = loaded.entry

    def run() -> None:
        loaded.verify_problems = diskcache.verify(entry)
        if loaded.verify_problems:
            reject_entry(entry, loaded.verify_problems)

    loaded.verification = threading.Thread(target=run, name=f"chatterbox_nb-verify-{loaded.name}", daemon=True)
    loaded.verification.start()


def reject_entry(entry: Path, problems: list[str]) -> None:
    """A disk-cache entry failed its sha256 check: warn once, remove it, and evict the
    models mapped from it, so their next use rebuilds the entry from the source."""
    warnings.warn(
        f"chatterbox_nb: disk-cache entry {entry.name}: {'; '.join(problems)}. It is removed and "
        "will be rebuilt from its source at the next load.",
        diskcache.CacheWarning,
        stacklevel=2,
    )
    with fsutil.lock_for(entry):
        fsutil.retire(entry)
    for m in loaded_models():
        if m.entry == entry:
            drop(m.key)


def loaded_models() -> list[LoadedModel]:
    with STATE.lock:
        return list(STATE.models.values())


def drop(key: ModelKey) -> LoadedModel | None:
    with STATE.lock:
        loaded = STATE.models.pop(key, None)
    if loaded is not None:
        with loaded.lock:  # let a running generation finish first
            loaded.tts = None
        release_memory(key.device)
    return loaded
