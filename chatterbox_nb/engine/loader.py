"""The kernel-global model registry: a model is loaded at most once per kernel.

Keys are (model, weights fingerprint, device, dtype). A hit returns the same object
and costs a dictionary lookup; a miss loads under a per-key lock, so two threads
asking at once load once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._state import STATE
from . import build, sources
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
    #: the highest warm-up level run on this model ("off", "light", "full")
    warmed: str = "off"
    warmup_s: float = 0.0

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


def get_or_load(
    spec: ModelSpec, weights: str, device: str, dtype: str, cache_root: Any, *, reload: bool = False
) -> tuple[LoadedModel, str]:
    """The model and where it came from this time ("memory", or the source kind)."""
    source = sources.resolve(spec, weights, cache_root)
    key = ModelKey(spec.name, source.fingerprint, device, dtype)
    with STATE.load_lock(key):
        loaded = STATE.models.get(key)
        if loaded is not None and not reload:
            return loaded, "memory"
        if loaded is not None:
            drop(key)
        start = time.perf_counter()
        tts = build.assemble(spec, source.folder, device, dtype)
        loaded = LoadedModel(key, spec, source, tts, time.perf_counter() - start, build.module_bytes(tts))
        with STATE.lock:
            STATE.models[key] = loaded
        return loaded, source.kind


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
