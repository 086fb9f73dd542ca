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

from ..._state import STATE
from ..store import build, diskcache, sources
from . import memory, precision
from .device import release_memory
from ..specs import ModelSpec


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
    #: the disk-cache entry it was mapped from (checked in full before it was mapped)
    entry: Path | None = None
    #: the highest warm-up level run on this model ("off", "light", "full"), and its figures
    warmed: str = "off"
    warmup_metrics: dict[str, Any] | None = None
    #: generations run so far
    calls: int = 0
    #: users queued for this model (in use: never unloaded to make room)
    users_waiting: int = 0
    #: when it was last used (time.time()): loaded, found in memory, or released after a generation
    last_used: float = field(default_factory=time.time)
    #: background holds (warm-up): a held model is in use, never unloaded to make room
    holds: int = 0
    #: set by an explicit unload: a say that queued for this model must not load it again
    unloaded: bool = False
    #: the --weights that named its source (a say that names none speaks with this model)
    weights: str = ""

    @contextlib.contextmanager
    def use(self, *, user: bool = True) -> Iterator["LoadedModel"]:
        """Hold the model for one generation. Users go first: background work (warm-up)
        waits while anyone is queued (on `STATE.users_left`, notified as each user gets its
        turn), and takes the model only between their calls.

        Generations are also serialised across models (`STATE.run_lock`): the RNG a
        seed sets, warm-up's RNG save and restore, and torch's thread count are all
        process-wide, so a seeded say must not share them with another model's run."""
        if user:
            with STATE.lock:
                STATE.users_waiting += 1
                self.users_waiting += 1
            try:
                self._acquire()
            finally:
                with STATE.users_left:
                    STATE.users_waiting -= 1
                    self.users_waiting -= 1
                    STATE.users_left.notify_all()
        else:
            while True:
                with STATE.users_left:  # woken when a user stops waiting, not polled
                    STATE.users_left.wait_for(lambda: not STATE.users_waiting)
                self._acquire()  # not under STATE.lock: the model's lock may be held for a whole say
                if not STATE.users_waiting:
                    break
                self._release()  # a user queued meanwhile: it goes first
        try:
            self.calls += 1
            self.last_used = time.time()
            yield self
        finally:
            self.last_used = time.time()
            self._release()

    def _acquire(self) -> None:
        self.lock.acquire()  # the model's own lock first, always: no two locks are taken the other way round
        try:
            STATE.run_lock.acquire()
        except BaseException:
            self.lock.release()
            raise

    def _release(self) -> None:
        STATE.run_lock.release()
        self.lock.release()

    @contextlib.contextmanager
    def hold(self) -> Iterator["LoadedModel"]:
        """Mark the model in use across several `use` calls (warm-up's steps)."""
        with STATE.lock:
            self.holds += 1
        try:
            yield self
        finally:
            with STATE.lock:
                self.holds -= 1

    @property
    def busy(self) -> bool:
        """Generating, queued for, or held: never the one unloaded to make room or when idle."""
        return self.lock.locked() or self.users_waiting > 0 or self.holds > 0

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
            loaded.last_used = time.time()
            return loaded, "memory"
        if loaded is not None:
            drop(key)
        memory.make_room(device, _expected_bytes(key, spec, source, cache_root), key, drop_if_idle)
        start = time.perf_counter()
        progress("opening the disk cache")
        with build.gc_paused():
            stored = precision.storage_dtype(dtype)
            parts, how, entry = _parts(spec, weights, source, stored, cache_root, progress)
            progress("building the model on the meta device and mapping its weights")
            tts = build.assemble(spec, parts, device, stored)
            precision.apply(tts, dtype, device)
        nbytes = build.module_bytes(tts) + precision.held_beside_weights(tts)
        loaded = LoadedModel(key, spec, source, tts, time.perf_counter() - start, nbytes, entry=entry, weights=weights)
        with STATE.lock:
            STATE.models[key] = loaded
            STATE.sizes[key] = loaded.nbytes
            STATE.unloaded.pop(spec.name, None)
        memory.make_room(device, loaded.nbytes, key, drop_if_idle)  # when the estimate was short
        start_idle_timer()
        return loaded, how


def _expected_bytes(key: ModelKey, spec: ModelSpec, source: sources.Source, root: Path) -> int:
    """What the model will hold, before it is loaded: its size last time in this kernel,
    or its disk-cache entry's weight files; 0 when neither is known (checked after)."""
    if STATE.sizes.get(key):
        return STATE.sizes[key]
    try:
        files = diskcache.read_manifest(diskcache.entry_dir(root, spec, source, key.dtype))["files"]
        return sum(int(f["size"]) for name, f in files.items() if name.endswith(".safetensors") and "conds" not in name)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _parts(
    spec: ModelSpec, weights: str, source: sources.Source, dtype: str, root: Path, progress: Progress
) -> tuple[Any, str, Any]:
    remake = (lambda: sources.rebuild(spec, source, root)) if source.rebuildable else None
    return diskcache.open_or_build(root, spec, source, dtype, progress, remake=remake)


def reject_entry(entry: Path, problems: list[str]) -> None:
    """A disk-cache entry failed its full check and was removed: warn once, and evict
    the models mapped from it, so that their next use rebuilds it from the source."""
    warnings.warn(
        f"chatterbox_nb: disk-cache entry {entry.name}: {'; '.join(problems)}. It is removed and "
        "will be rebuilt from its source at the next load.",
        diskcache.CacheWarning,
        stacklevel=2,
    )
    for m in loaded_models():
        if m.entry == entry:
            drop(m.key)


def loaded_models() -> list[LoadedModel]:
    with STATE.lock:
        return list(STATE.models.values())


def drop_if_idle(loaded: LoadedModel) -> bool:
    """Unload `loaded` unless it is in use; whether it was unloaded."""
    with STATE.lock:
        if loaded.busy or STATE.models.get(loaded.key) is not loaded:
            return False
        del STATE.models[loaded.key]
    with loaded.lock:  # a say that took it from the registry just now finds tts None and reloads
        loaded.tts = None
    release_memory(loaded.key.device)
    return True


def drop(key: ModelKey) -> LoadedModel | None:
    """Forget the model and free its memory once its running generation ends. (An
    explicit unload marks the model `unloaded` itself, before it stops the running says.)"""
    with STATE.lock:
        loaded = STATE.models.pop(key, None)
    if loaded is not None:
        with loaded.lock:  # let a running generation finish first
            loaded.tts = None
        release_memory(key.device)
    return loaded


def start_idle_timer() -> None:
    """The idle-unload timer, with this module's way to drop an idle model."""
    memory.start_idle_timer(drop_if_idle)


STATE.idle_unload_hook = start_idle_timer  # config calls it when idle_unload is turned on
