"""Models load in the background, so the kernel stays responsive.

`start` runs one job per model choice in a `LoadTask` thread: imports, weights, the
disk cache, module build, then warm-up. `obtain` is what `say` uses: the model from
memory, or after waiting for a load in flight (timed as `wait_s`), or loaded right
here when nothing is under way. A failed background load is raised once, by the next
caller that needs it, then forgotten so that a retry starts afresh.
"""

from __future__ import annotations

import atexit
import time
from typing import TYPE_CHECKING, Any

from . import config, options
from ._state import STATE
from .display.once import ShownOncePerCell
from .engine.specs import SPECS
from .engine.models import loader
from .errors import InvalidOption
from .tasks import Cancelled, LoadTask

if TYPE_CHECKING:
    from .engine.models.loader import LoadedModel

TaskKey = tuple[str, str, str, str]


class LoadReport(ShownOncePerCell):
    """What a load did: which model, from where, how long, how much memory, warm-up.
    After `load --wait` the live progress line already shows it: not again as the value."""

    def __init__(self, loaded: LoadedModel, source: str, seconds: float, warmup: dict[str, Any] | None = None) -> None:
        self.model = loaded.name
        self.source = source
        self.seconds = seconds
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.nbytes = loaded.nbytes
        self.dummy = loaded.is_dummy
        self.warmed = loaded.warmed
        self.warmup = warmup or loaded.warmup_metrics or {"level": loaded.warmed}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        from .engine.generation.warmup import describe

        noise = " (dummy weights: output is noise)" if self.dummy else ""
        return (
            f"{self.model} ready on {self.device} ({self.dtype}, {self.nbytes / 2**30:.2f} GiB), "
            f"from {self.source} in {self.seconds:.2f} s; {describe(self.warmup)}{noise}"
        )


def key(choice: options.ModelChoice) -> TaskKey:
    return (choice.model, choice.weights, choice.device, choice.dtype)


def load_now(choice: options.ModelChoice, reload: bool = False, progress: Any = None) -> tuple[LoadedModel, str, float]:
    """Load in the calling thread (a memory hit costs a lookup). Device and dtype are
    resolved here (`auto`), so the registry holds what really runs."""
    from .engine.models.device import resolve_device
    from .engine.models.precision import apply_threads, resolve_dtype

    device = resolve_device(choice.device)
    dtype = resolve_dtype(choice.dtype, device)
    if device == "cpu":
        apply_threads(config.settings().threads)
    start = time.perf_counter()
    kwargs = {"progress": progress} if progress is not None else {}
    loaded, source = loader.get_or_load(
        SPECS[choice.model], choice.weights, device, dtype, config.cache_dir(), reload=reload, **kwargs
    )
    return loaded, source, time.perf_counter() - start


def start(
    choice: options.ModelChoice, level: str, *, reload: bool = False, rewarm: bool = False, measure: bool = False
) -> LoadTask:
    """The running task for this choice, or a new one."""

    def job(task: LoadTask) -> LoadReport:
        task.report("importing torch and chatterbox")
        SPECS[choice.model].tts_cls()  # the imports (5-9 s on a CPU) are not the load's figure
        loaded, source, seconds = load_now(choice, reload, task.report)
        if task.cancelled and source != "memory":  # unloaded while we loaded: do not bring it back
            loader.drop(loaded.key)
            raise Cancelled
        task.mark_ready((loaded, source))
        metrics = None
        if rewarm or config.WARMUP_LEVELS.index(level) > config.WARMUP_LEVELS.index(loaded.warmed):
            from .engine.generation.warmup import warm

            root = config.cache_dir() if config.settings().compile else None
            with loaded.hold():  # being warmed: never unloaded to make room
                metrics = warm(loaded, level, task.report, measure=measure, cache_root=root)
            if config.WARMUP_LEVELS.index(level) >= config.WARMUP_LEVELS.index(loaded.warmed):
                loaded.warmed = level
            loaded.warmup_metrics = metrics
        return LoadReport(loaded, source, seconds, metrics)

    asks = (level, reload, rewarm, measure)
    with STATE.lock:
        running = STATE.tasks.get(key(choice))
        if running is not None and not running.done:
            _check_covered(running, asks)
            return running
        task = LoadTask(choice.model, job)
        task.key = key(choice)
        task.asks = asks
        STATE.tasks[task.key] = task
    return task.start()


def _check_covered(running: LoadTask, asks: tuple[str, bool, bool, bool]) -> None:
    """A request that the running task does not cover (a reload, more warm-up, a
    report) is refused in one sentence rather than dropped; the running task goes on."""
    level, reload, _, measure = asks
    r_level, _, _, r_measure = getattr(running, "asks", ("off", False, False, False))
    extra = []
    if reload:
        extra.append("--reload")
    if config.WARMUP_LEVELS.index(level) > config.WARMUP_LEVELS.index(r_level):
        extra.append(f"warm-up {level}")
    if measure and not r_measure:
        extra.append("--report")
    if extra:
        raise InvalidOption(
            f"{running.name} is loading already (warm-up {r_level}), so {' and '.join(extra)} cannot be added to "
            "it: wait for it to finish (`%chatterbox status`), then ask again."
        )


def obtain(choice: options.ModelChoice) -> tuple[LoadedModel, str, float, float]:
    """(model, source, load_s, wait_s) for `say`: from memory, after waiting for a
    load in flight (its source, no load time of ours), or loaded here and now."""
    with STATE.lock:
        task = STATE.tasks.get(key(choice))
    wait_s, waited = 0.0, None
    if task is not None and (not task.done or task.failed):
        begin = time.perf_counter()
        try:
            waited = task.wait_ready()  # not its warm-up: `use(user=True)` goes ahead of that
        except BaseException:
            if task.failed:
                forget(task)  # raised once; the next call tries again
            raise
        finally:
            wait_s = time.perf_counter() - begin
    loaded, source, load_s = load_now(choice)
    if waited is not None and source == "memory":
        return loaded, waited[1], 0.0, wait_s
    return loaded, source, load_s, wait_s


def in_memory(choice: options.ModelChoice, *, device: bool = False, dtype: bool = False) -> options.ModelChoice:
    """For a say that names no weights: the model of that name already in memory (the most
    recently used), else the newest load of it under way, else `choice` (the defaults).
    `device` and `dtype`: the user gave them, so only a model on that device, in that
    dtype, will do."""
    import dataclasses

    from .engine.models.device import resolve_device
    from .engine.models.precision import resolve_dtype

    def fits(on: str, kind: str) -> bool:
        wanted = resolve_device(choice.device) if device else on
        return on == wanted and (not dtype or kind == resolve_dtype(choice.dtype, wanted))

    loaded = [m for m in loader.loaded_models() if m.name == choice.model and m.weights and not m.unloaded]
    loaded = [m for m in loaded if fits(m.device, m.dtype)]
    if loaded:
        m = max(loaded, key=lambda m: m.last_used)
        return dataclasses.replace(choice, weights=m.weights, device=m.device, dtype=m.dtype)
    with STATE.lock:
        running = [t for t in STATE.tasks.values() if not t.done and t.key is not None and t.key[0] == choice.model]
    running = [t for t in running if (not device or t.key[2] == choice.device) and (not dtype or t.key[3] == choice.dtype)]
    if running:
        return options.ModelChoice(*max(running, key=lambda t: t.started).key)
    return choice


def forget(task: LoadTask) -> None:
    with STATE.lock:
        if STATE.tasks.get(task.key) is task:
            del STATE.tasks[task.key]


def finish(task: LoadTask) -> LoadReport:
    """Wait for the whole task (warm-up included); a failure is raised once, then forgotten."""
    try:
        return task.wait()
    except BaseException:
        if task.failed:
            forget(task)
        raise


def _at_exit() -> None:
    cancel_all(join_s=2.0)


with STATE.lock:  # once per kernel, however often this module is reloaded
    if not STATE.exit_hook:
        atexit.register(_at_exit)
        STATE.exit_hook = True


def cancel_all(join_s: float = 0.0, model: str | None = None) -> list[LoadTask]:
    """Ask running tasks to stop at their next stage; wait up to `join_s` for each."""
    with STATE.lock:
        tasks = [t for k, t in STATE.tasks.items() if not t.done and (model is None or k[0] == model)]
    for task in tasks:
        task.cancel(join_s)
    return tasks
