"""Background work that a notebook must never wait for: loading and warming up models.

A `LoadTask` runs one job in a daemon thread and publishes its stage as it goes, so
a widget can show it. A failure is kept on the task and raised by whoever waits on
it next (`say`, `load --wait`); it is never lost in the thread. Cancellation is
cooperative: the job checks at each stage, so `unload` and `%unload_ext` stop it
between steps without killing anything half-way.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .display.once import ShownOncePerCell
from .errors import ChatterboxError

Listener = Callable[["LoadTask"], None]


class Cancelled(Exception):
    """The task was asked to stop; raised inside the job at its next stage."""


class BackgroundError(ChatterboxError):
    """An unexpected failure in a background load, re-raised where someone waits."""


class LoadTask(ShownOncePerCell):
    """One background load (and warm-up) of one model choice; renders as a live widget."""

    def __init__(self, name: str, job: Callable[["LoadTask"], Any]) -> None:
        self.name = name
        #: the registry key it runs under (set by whoever registers it)
        self.key: Any = None
        self.stage = "queued"
        self.steps: tuple[int, int] | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._job = job
        self._done = threading.Event()
        #: set once the model is usable (before warm-up), with `model` holding it
        self._ready = threading.Event()
        self.model: Any = None
        self._cancel = threading.Event()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"chatterbox_nb-load-{name}", daemon=True)

    # -- the worker side -------------------------------------------------------------------

    def start(self) -> "LoadTask":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._job(self)
            self.stage = "ready"
        except Cancelled:
            self.stage = "cancelled"
            self.error = ChatterboxError(f"Loading {self.name} was cancelled.")
        except BaseException as exc:  # noqa: BLE001 - kept for the waiter, never lost
            self.stage = "failed"
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self._done.set()
            self._ready.set()
            self._notify()

    def report(self, stage: str, step: int | None = None, of: int | None = None) -> None:
        """Publish progress; also the point where a cancelled job stops."""
        if self._cancel.is_set():
            raise Cancelled
        self.stage = stage
        self.steps = (step, of) if step is not None and of else None
        self._notify()

    def mark_ready(self, model: Any) -> None:
        """The model is usable; what follows (warm-up) need not hold anyone up."""
        self.model = model
        self._ready.set()

    # -- the waiting side ------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def failed(self) -> bool:
        return self.done and self.error is not None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def wait(self, timeout: float | None = None) -> Any:
        """The job's result, or its error raised here. Short waits keep the main
        thread interruptible (the notebook's stop button)."""
        self._block(self._done, timeout)
        if self.error is None:
            return self.result
        self._raise()

    def wait_ready(self, timeout: float | None = None) -> Any:
        """The model as soon as it is usable (warm-up may go on), or the error."""
        self._block(self._ready, timeout)
        if self.model is not None:
            return self.model
        self._raise()

    def _block(self, event: threading.Event, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not event.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Loading {self.name} is still running after {timeout} s.")

    def _raise(self) -> None:
        assert self.error is not None
        if isinstance(self.error, ChatterboxError):
            raise self.error
        raise BackgroundError(  # noqa: B904 - chained explicitly
            f"Loading {self.name} in the background failed: {type(self.error).__name__}: {self.error}"
        ) from self.error

    def cancel(self, join_s: float = 0.0) -> None:
        self._cancel.set()
        if join_s and self.thread.is_alive():
            self.thread.join(join_s)

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
        if self.done:
            listener(self)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(self)
            except Exception:  # noqa: BLE001 - a broken display must not break a load
                pass

    def summary(self) -> str:
        if self.failed:
            return f"{self.name}: {self.stage} after {self.elapsed:.1f} s: {self.error}"
        if self.done:
            return repr(self.result)
        steps = f" ({self.steps[0]}/{self.steps[1]})" if self.steps else ""
        return f"{self.name}: {self.stage}{steps}, {self.elapsed:.1f} s"

    def __repr__(self) -> str:
        return f"<LoadTask {self.summary()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .display.progress import task_bundle

        return task_bundle(self)
