"""The kernel's only global state: loaded models, voice conditionals, history, settings.

`%reload_ext` re-imports just the top-level package, `importlib.reload` re-runs a
module's code, and a user may even purge `sys.modules`: none of them may cost a
model load (seconds and gigabytes). So the state object is anchored on the `sys`
module, which outlives every import of this package, and each reload of this file
finds the same object again.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # types only: this module imports nothing of ours at run time
    from .config import Chatterbox
    from .engine.models.loader import LoadedModel, ModelKey
    from .engine.models.memory import IdleTimer
    from .comparison import Comparison
    from .progressive import ChunkRun
    from .tasks import LoadTask
    from .utterance import Utterance

_ANCHOR = "_chatterbox_nb_kernel_state"


class History(list["Utterance"]):
    """The kernel's utterances, oldest first. Their audio is bounded: past the budget
    (`Chatterbox.history_audio_mb`, which config hands in as `budget`), the oldest
    utterances release their audio and widgets and keep their text, parameters,
    timings and saved file; a kernel that speaks all day does not grow without end."""

    def __init__(self) -> None:
        super().__init__()
        #: bytes of audio the history may keep (None: no bound); config sets it
        self.budget: Callable[[], int | None] | None = None
        #: id(utterance) -> the tag it joined with (a comparison's name); untagged ones absent
        self.tags: dict[int, str] = {}

    def tag(self, utt: Utterance, tag: str) -> None:
        """Mark `utt` (already in the history) as made by, say, comparison `tag`."""
        self.__dict__.setdefault("tags", {})[id(utt)] = tag  # a history made before this attribute existed

    def tag_of(self, utt: Utterance) -> str | None:
        return getattr(self, "tags", {}).get(id(utt))

    def append(self, utt: Utterance) -> None:
        super().append(utt)
        limit = self.budget() if callable(self.budget) else None
        if limit is None:
            return
        held = 0
        for old in reversed(self):  # the newest keep their audio
            held += old.audio_bytes
            if held > limit and old is not utt:
                old.release_audio()

    def held_bytes(self) -> int:
        return sum(u.audio_bytes for u in self)

    def describe(self) -> str:
        """What `status` says of it: how many, how many still hold audio, and how much."""
        kept = sum(1 for u in self if u.audio_bytes)
        released = f", {len(self) - kept} older with their audio released" if kept < len(self) else ""
        return f"{len(self)} ({kept} with audio, {self.held_bytes() / 2**20:.1f} MiB{released})"


class KernelState:
    """Plain containers behind one lock; nothing here imports torch."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.models: dict[ModelKey, LoadedModel] = {}
        #: per-key locks so two threads never load the same model twice
        self.load_locks: dict[ModelKey, threading.Lock] = {}
        #: held by whichever generation runs now, on any model (loader.LoadedModel.use),
        #: and how many users queue for one (background work gives way to them)
        self.run_lock = threading.Lock()
        self.users_waiting = 0
        #: notified under `lock` when `users_waiting` falls: background work waits on it
        self.users_left = threading.Condition(self.lock)
        #: background loads by (model, weights, device, dtype): running, or failed and not yet reported
        self.tasks: dict[tuple[str, str, str, str], LoadTask] = {}
        #: long says and comparisons running in the background, for `cnb.stop()`
        self.says: list[ChunkRun | Comparison] = []
        #: Utterances of this kernel, oldest first
        self.history = History()
        #: seconds of work and of audio of this kernel's says, by model key (estimate.py's pace)
        self.say_rates: dict[ModelKey, tuple[float, float]] = {}
        #: voice conditionals by (model entry, audio sha256), least recently used first
        self.voice_conds: OrderedDict[Any, Any] = OrderedDict()
        #: sha256 of audio files by (path, size, mtime_ns), so a voice is not re-read every cell
        self.file_hashes: dict[tuple[str, int, int], str] = {}
        #: the `Chatterbox` settings object (config.py), created on first use
        self.settings: Chatterbox | None = None
        #: the idle-unload timer (engine/models/memory.py), while one runs
        self.idle_timer: IdleTimer | None = None
        #: what config calls when idle_unload is turned on (engine/models/loader.py sets it), so that
        #: config, below the engine, need not import it
        self.idle_unload_hook: Callable[[], None] | None = None
        #: bytes each model key held when last loaded, to make room before loading it again
        self.sizes: dict[ModelKey, int] = {}
        #: models unloaded by the memory budget or idle unload: model -> (reason, when)
        self.unloaded: dict[str, tuple[str, float]] = {}
        #: whether loading.py registered its atexit hook (once per kernel)
        self.exit_hook = False

    def load_lock(self, key: ModelKey) -> threading.Lock:
        with self.lock:
            return self.load_locks.setdefault(key, threading.Lock())


def get_state() -> KernelState:
    state = getattr(sys, _ANCHOR, None)
    if state is None:
        state = KernelState()
        setattr(sys, _ANCHOR, state)
    return state


STATE = get_state()
