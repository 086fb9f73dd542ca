"""A memory budget for the loaded models, and unloading of idle ones, so a kernel can live all day.

Models are grouped by the memory they occupy: the host's RAM (cpu, and mps, which shares
it) or one CUDA device. Before a model is loaded into a group, the least recently used
models of that group that are not in use (none generating, queued for or being warmed)
are unloaded until the new one fits `Chatterbox.memory_limit`, each with one line saying
so. With `Chatterbox.idle_unload` set, a timer thread unloads models unused for that many
minutes. Either way the next say of such a model maps it again from the disk cache
(`model_source == "disk-cache"`), which costs about a second.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ... import config
from ..._state import STATE


def pool(device: str) -> str:
    """The memory a model on `device` occupies: "host" or one CUDA device."""
    if device.startswith("cuda"):
        return device if ":" in device else "cuda:0"
    return "host"


def total_bytes(device: str) -> int:
    """The size of that memory (the machine's RAM, or the GPU's memory)."""
    if pool(device) != "host":
        import torch

        return int(torch.cuda.get_device_properties(int(pool(device).partition(":")[2])).total_memory)
    import psutil

    return int(psutil.virtual_memory().total)


def budget_bytes(device: str) -> int:
    """What the models on that memory may hold: `memory_limit` GiB, or a share of it."""
    limit = config.settings().memory_limit
    if limit is not None:
        return int(limit * 2**30)
    share = config.RAM_SHARE if pool(device) == "host" else config.GPU_SHARE
    return int(share * total_bytes(device))


def budget_source() -> str:
    limit = config.settings().memory_limit
    if limit is not None:
        return "Chatterbox.memory_limit"
    return f"{config.RAM_SHARE:.0%} of RAM, {config.GPU_SHARE:.0%} of a GPU's memory"


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _describe(m: Any) -> str:
    return f"{m.name} ({m.device}, {m.dtype}, {m.nbytes / 2**30:.2f} GiB, last used {ago(time.time() - m.last_used)})"


def _note(model: str, reason: str) -> None:
    with STATE.lock:
        STATE.unloaded[model] = (reason, time.time())


def make_room(device: str, need: int, keep: Any, drop_idle: Callable[[Any], bool]) -> list[str]:
    """Unload least recently used idle models on `device`'s memory until `need` more bytes
    fit the budget. Prints one line per model unloaded (or one saying the models in use
    leave no room); returns those lines."""
    budget = budget_bytes(device)
    lines: list[str] = []
    while True:
        with STATE.lock:
            same = [m for m in STATE.models.values() if pool(m.device) == pool(device) and m.key != keep]
        held = sum(m.nbytes for m in same)
        if held + need <= budget:
            return lines
        idle = sorted((m for m in same if not m.busy), key=lambda m: m.last_used)
        if not idle:
            line = (
                f"chatterbox_nb: loading past the memory budget ({(held + need) / 2**30:.2f} of "
                f"{budget / 2**30:.2f} GiB): the other models are in use."
            )
            print(line, flush=True)
            return lines + [line]
        victim = idle[0]
        if not drop_idle(victim):  # it became busy meanwhile: look again
            continue
        _note(victim.name, "memory budget")
        line = (
            f"chatterbox_nb: unloaded {_describe(victim)} to stay within the memory budget of "
            f"{budget / 2**30:.2f} GiB ({budget_source()}); its next say reloads it from the disk cache."
        )
        print(line, flush=True)
        lines.append(line)


# -- idle unload ---------------------------------------------------------------------------


class IdleTimer:
    """A daemon thread that unloads models idle for `Chatterbox.idle_unload` minutes. It
    ends by itself when the setting is off or no model is left, and at `stop`."""

    def __init__(self, drop_idle: Callable[[Any], bool]) -> None:
        self._drop_idle = drop_idle
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chatterbox_nb-idle-unload", daemon=True)

    def _run(self) -> None:
        while True:
            minutes = config.settings().idle_unload
            with STATE.lock:
                if self._stop.is_set() or not minutes or not STATE.models:
                    if STATE.idle_timer is self:
                        STATE.idle_timer = None
                    return
                models = list(STATE.models.values())
            limit = minutes * 60
            now = time.time()
            for m in models:
                if not m.busy and now - m.last_used >= limit and self._drop_idle(m):
                    _note(m.name, f"idle {minutes:g} min")
            # check again a quarter of the limit later (at most every 30 s, at least every 50 ms)
            self._stop.wait(min(30.0, max(0.05, limit / 4)))

    def stop(self, join_s: float = 5.0) -> None:
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(join_s)


def start_idle_timer(drop_idle: Callable[[Any], bool]) -> None:
    """Start the timer when `idle_unload` is on and models are loaded (once). `drop_idle`
    is the loader's (handed in: the loader imports this module, not the other way)."""
    with STATE.lock:
        if not config.settings().idle_unload or not STATE.models:
            return
        timer = STATE.idle_timer
        if timer is not None and timer.thread.is_alive() and not timer._stop.is_set():
            return
        STATE.idle_timer = IdleTimer(drop_idle)
        STATE.idle_timer.thread.start()


def stop_idle_timer(join_s: float = 5.0) -> None:
    """Stop the timer thread (`%unload_ext`, `unload --all`); the next load starts it again."""
    with STATE.lock:
        timer, STATE.idle_timer = STATE.idle_timer, None
    if timer is not None:
        timer.stop(join_s)
