"""Settings, read in one place: traitlets defaults, `CHATTERBOX_NB_*` variables, cache dir.

Precedence, lowest first: built-in default, environment variable, IPython config
(`c.Chatterbox.device` in ipython_config.py or `%config Chatterbox.device = "cpu"`),
then an explicit argument to a call. The one `Chatterbox` instance lives in
`_state`, so `%reload_ext` keeps what `%config` set.
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Bool, CaselessStrEnum, Int, Unicode, default
from traitlets.config import Configurable

from ._state import STATE
from .errors import CacheError

MODELS = ("english", "turbo", "multilingual")
#: `auto` resolves per device at load time (engine/precision.py); `int8` is opt-in and lossy
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
WARMUP_LEVELS = ("off", "light", "full")

ENV_DEVICE = "CHATTERBOX_NB_DEVICE"
ENV_WEIGHTS = "CHATTERBOX_NB_WEIGHTS"
ENV_CACHE_DIR = "CHATTERBOX_NB_CACHE_DIR"
ENV_AUTOLOAD = "CHATTERBOX_NB_AUTOLOAD"
ENV_DTYPE = "CHATTERBOX_NB_DTYPE"
ENV_THREADS = "CHATTERBOX_NB_THREADS"
ENV_COMPILE = "CHATTERBOX_NB_COMPILE"

_TRUE = {"1", "true", "yes", "on"}


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
        help="torch.compile S3Gen in the background during full warm-up (not float32; kept in the "
        "cache dir for later kernels; env CHATTERBOX_NB_COMPILE)."
    ).tag(config=True)
    weights = Unicode(help="hub, dummy, or a local checkpoint folder (env CHATTERBOX_NB_WEIGHTS).").tag(
        config=True
    )
    warmup = CaselessStrEnum(WARMUP_LEVELS, default_value="light", help="Warm-up level after a load.").tag(
        config=True
    )
    autoload = Bool(help="Start loading the default model on %load_ext (env CHATTERBOX_NB_AUTOLOAD).").tag(
        config=True
    )
    cache_dir = Unicode(help="Disk cache folder (env CHATTERBOX_NB_CACHE_DIR).").tag(config=True)

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

    @default("weights")
    def _default_weights(self) -> str:
        return os.environ.get(ENV_WEIGHTS, "hub")

    @default("autoload")
    def _default_autoload(self) -> bool:
        return os.environ.get(ENV_AUTOLOAD, "").strip().lower() in _TRUE

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        return os.environ.get(ENV_CACHE_DIR) or str(default_cache_dir())


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
