"""Settings, read in one place: traitlets defaults, `CHATTERBOX_NB_*` variables, cache dir.

Precedence, lowest first: built-in default, environment variable, IPython config
(`c.Chatterbox.device` in ipython_config.py or `%config Chatterbox.device = "cpu"`),
then an explicit argument to a call. The one `Chatterbox` instance lives in
`_state`, so `%reload_ext` keeps what `%config` set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, Union, default, observe, validate
from traitlets.config import Configurable

from ._state import STATE
from .engine.specs import SPECS
from .engine.store.weights import WEIGHTS_VALUES
from .errors import CacheError, InvalidOption

#: one entry a spec (engine/specs.py): adding a model adds it here
MODELS = tuple(SPECS)
#: `auto` resolves per device at load time (engine/models/precision.py); `int8` is opt-in and lossy
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
WARMUP_LEVELS = ("off", "light", "full")

ENV_DEVICE = "CHATTERBOX_NB_DEVICE"
ENV_WEIGHTS = "CHATTERBOX_NB_WEIGHTS"
ENV_CACHE_DIR = "CHATTERBOX_NB_CACHE_DIR"
ENV_AUTOLOAD = "CHATTERBOX_NB_AUTOLOAD"
ENV_MEMORY_LIMIT = "CHATTERBOX_NB_MEMORY_LIMIT"
ENV_IDLE_UNLOAD = "CHATTERBOX_NB_IDLE_UNLOAD"
ENV_DTYPE = "CHATTERBOX_NB_DTYPE"
ENV_THREADS = "CHATTERBOX_NB_THREADS"
ENV_COMPILE = "CHATTERBOX_NB_COMPILE"
ENV_OVERLAP = "CHATTERBOX_NB_OVERLAP"
ENV_GROUP_RENDERS = "CHATTERBOX_NB_GROUP_RENDERS"
ENV_HISTORY_AUDIO_MB = "CHATTERBOX_NB_HISTORY_AUDIO_MB"
#: MiB of audio the history keeps by default: about 25 minutes at 24 kHz in float32
HISTORY_AUDIO_MB = 128.0

#: without `memory_limit`, the models of one kind of memory may hold this share of it
RAM_SHARE = 0.75
GPU_SHARE = 0.9

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def default_cache_dir() -> Path:
    """The platform's user cache dir (`~/.cache/chatterbox_nb` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("chatterbox_nb", appauthor=False))


class Chatterbox(Configurable):
    """Defaults for `%chatterbox` and the Python API (`%config Chatterbox` lists them)."""

    model = CaselessStrEnum(MODELS, default_value="english", help="Model used when -m is not given.").tag(
        config=True
    )
    device = Unicode(help="auto, cpu, cuda, cuda:N or mps (env CHATTERBOX_NB_DEVICE).").tag(config=True)
    dtype = CaselessStrEnum(
        DTYPES, help="auto (bfloat16 where the hardware computes it natively, else float32), float32, "
        "bfloat16, float16 or int8 (env CHATTERBOX_NB_DTYPE)."
    ).tag(config=True)
    threads = Int(
        help="torch CPU threads for generation; 0 = every core torch sees (env CHATTERBOX_NB_THREADS)."
    ).tag(config=True)
    compile = Bool(
        help="Compile S3Gen (AOTInductor) in the background during full warm-up (not float32; the "
        "package is kept in the cache dir and loaded by later kernels; env CHATTERBOX_NB_COMPILE)."
    ).tag(config=True)
    overlap = Union(
        [Bool(), CaselessStrEnum(["auto"])],
        help="Render S3Gen on a thread of its own while T3 samples on, the threads shared (T3 a quarter): "
        "True: a streamed sentence's middle pieces and a paragraph's sentences (sentence i while T3 samples "
        "sentence i+1); 'auto' (the default): only the pieces, where it measured faster (turbo, 2-core CPU); "
        "False: neither (env CHATTERBOX_NB_OVERLAP=1/0/auto)."
    ).tag(config=True)
    group_renders = Union(
        [Bool(), CaselessStrEnum(["auto"])],
        help="Render a paragraph's sentences after the first in groups, one S3Gen call a group (each call "
        "re-reads the voice prompt): 'auto' (the default) on a CPU, True everywhere, False never "
        "(env CHATTERBOX_NB_GROUP_RENDERS=1/0/auto)."
    ).tag(config=True)
    weights = Unicode(help=f"{WEIGHTS_VALUES} (env CHATTERBOX_NB_WEIGHTS).").tag(
        config=True
    )
    warmup = CaselessStrEnum(WARMUP_LEVELS, default_value="light", help="Warm-up level after a load.").tag(
        config=True
    )
    autoload = Bool(help="Start loading the default model on %load_ext (env CHATTERBOX_NB_AUTOLOAD).").tag(
        config=True
    )
    cache_dir = Unicode(help="Disk cache folder (env CHATTERBOX_NB_CACHE_DIR).").tag(config=True)
    memory_limit = Float(
        None,
        allow_none=True,
        help="GiB the loaded models may hold on one kind of memory; loading past it first unloads the least "
        f"recently used idle model. None: {RAM_SHARE:.0%} of the RAM, {GPU_SHARE:.0%} of a GPU's memory "
        "(env CHATTERBOX_NB_MEMORY_LIMIT).",
    ).tag(config=True)
    idle_unload = Float(
        0.0,
        help="Minutes after its last use when a model is unloaded in the background; 0 keeps models "
        "(env CHATTERBOX_NB_IDLE_UNLOAD).",
    ).tag(config=True)

    history_audio_mb = Float(
        HISTORY_AUDIO_MB,
        help="MiB of audio the history keeps; past it the oldest utterances release their audio and keep their "
        "text, parameters and saved file (env CHATTERBOX_NB_HISTORY_AUDIO_MB).",
    ).tag(config=True)

    compare_max_cells = Int(
        24, help="Most cells one %chatterbox compare may make (the product of its values)."
    ).tag(config=True)

    @validate("compare_max_cells")
    def _check_compare_max_cells(self, proposal: Any) -> int:
        if not proposal.value >= 1:
            raise TraitError("Chatterbox.compare_max_cells must be 1 or more.")
        return proposal.value

    @default("history_audio_mb")
    def _default_history_audio_mb(self) -> float:
        value = _env_float(ENV_HISTORY_AUDIO_MB)
        return HISTORY_AUDIO_MB if value is None else value

    @validate("history_audio_mb")
    def _check_history_audio_mb(self, proposal: Any) -> float:
        if not proposal.value >= 0:
            raise TraitError("Chatterbox.history_audio_mb is in MiB and must be 0 (keep only the last) or more.")
        return proposal.value

    @default("device")
    def _default_device(self) -> str:
        return os.environ.get(ENV_DEVICE, "auto")

    @default("dtype")
    def _default_dtype(self) -> str:
        value = os.environ.get(ENV_DTYPE, "auto").strip().lower()
        return value if value in DTYPES else "auto"

    @default("threads")
    def _default_threads(self) -> int:
        try:
            return max(0, int(os.environ.get(ENV_THREADS, "0")))
        except ValueError:
            return 0

    @default("compile")
    def _default_compile(self) -> bool:
        return os.environ.get(ENV_COMPILE, "1").strip().lower() in _TRUE

    @default("overlap")
    def _default_overlap(self) -> bool | str:
        return _env_auto(ENV_OVERLAP)

    @default("group_renders")
    def _default_group_renders(self) -> bool | str:
        return _env_auto(ENV_GROUP_RENDERS)

    @default("weights")
    def _default_weights(self) -> str:
        return os.environ.get(ENV_WEIGHTS, "hub")

    @default("autoload")
    def _default_autoload(self) -> bool:
        return os.environ.get(ENV_AUTOLOAD, "").strip().lower() in _TRUE

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        return os.environ.get(ENV_CACHE_DIR) or str(default_cache_dir())

    @default("memory_limit")
    def _default_memory_limit(self) -> float | None:
        return _env_float(ENV_MEMORY_LIMIT)

    @default("idle_unload")
    def _default_idle_unload(self) -> float:
        return _env_float(ENV_IDLE_UNLOAD) or 0.0

    @validate("memory_limit")
    def _check_memory_limit(self, proposal: Any) -> float | None:
        if proposal.value is not None and not proposal.value > 0:
            raise TraitError("Chatterbox.memory_limit is in GiB and must be above 0 (None: a share of the memory).")
        return proposal.value

    @validate("idle_unload")
    def _check_idle_unload(self, proposal: Any) -> float:
        if not proposal.value >= 0:
            raise TraitError("Chatterbox.idle_unload is in minutes and must be 0 (off) or more.")
        return proposal.value

    @observe("idle_unload")
    def _idle_unload_changed(self, change: Any) -> None:
        hook = STATE.idle_unload_hook  # set by the engine's loader once it is imported
        if change.new and hook is not None:  # the models already loaded get their timer now, not at their next use
            hook()


def _env_auto(name: str) -> bool | str:
    """A True/False/"auto" setting from the environment: anything but a yes or a no is "auto"."""
    value = os.environ.get(name, "auto").strip().lower()
    return True if value in _TRUE else False if value in _FALSE else "auto"


def _env_float(name: str) -> float | None:
    """A number from the environment; empty, `auto` or `off` mean unset."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "auto", "none", "off"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidOption(f"{name}={raw!r} is not a number.") from None


def settings() -> Chatterbox:
    """The kernel's one settings object (created on first use)."""
    with STATE.lock:
        if STATE.settings is None:
            STATE.settings = Chatterbox()
        return STATE.settings


def cache_dir() -> Path:
    path = Path(settings().cache_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise CacheError(
            f"The cache dir {path} is not a folder: set %config Chatterbox.cache_dir (or CHATTERBOX_NB_CACHE_DIR) "
            "to a folder you can write."
        )
    return path


def history_budget() -> int:
    """Bytes of audio the history keeps (`history_audio_mb`)."""
    return int(settings().history_audio_mb * 2**20)


if hasattr(STATE.history, "budget"):  # the history asks for its bound at each say, as set then
    STATE.history.budget = history_budget
