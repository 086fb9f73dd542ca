"""Chatterbox text-to-speech in Jupyter: `%load_ext chatterbox_nb`, then `%chatterbox say "Hi"`.

Importing this package is cheap: torch and chatterbox are imported on first use.
The public API (`say`, `load`, ...) is re-exported lazily from `api`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "say",
    "compare",
    "Comparison",
    "stop",
    "load",
    "warmup",
    "unload",
    "status",
    "history",
    "ui",
    "batch",
    "cache",
    "voices",
    "Utterance",
    "ChatterboxError",
    "BatchError",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_LAZY = {
    "say": "api",
    "compare": "comparison",
    "Comparison": "comparison",
    "stop": "api",
    "load": "api",
    "warmup": "api",
    "unload": "api",
    "status": "api",
    "ui": "controllers.panel",
    "cache": "cache_api",
    "voices": "voices_api",
    "Utterance": "utterance",
    "ChatterboxError": "errors",
    "batch": "batching.run",
    "BatchError": "batching.rows",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import load, say, status, stop, unload
    from .comparison import Comparison, compare
    from .errors import ChatterboxError
    from .utterance import Utterance


def __getattr__(name: str) -> Any:
    if name == "history":  # a fresh list of this kernel's utterances on every access
        return importlib.import_module(f"{__name__}.api").history()
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """Register %chatterbox; apply IPython config to the kernel's settings object."""
    from .config import settings
    from .magics import ChatterboxMagics

    s = settings()
    s.update_config(ipython.config)
    if s not in ipython.configurables:
        ipython.configurables.append(s)
    ipython.register_magics(ChatterboxMagics)
    if s.autoload:
        from IPython.display import display

        from .api import load

        display(load())  # returns at once; the widget shows the progress


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and stop background work between its steps; loaded models
    stay in the kernel for the next %load_ext."""
    from .engine.models.memory import stop_idle_timer
    from .loading import cancel_all
    from .progressive import stop_all

    stop_all(join_s=10.0)
    cancel_all(join_s=10.0)
    stop_idle_timer()
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("chatterbox", None)
