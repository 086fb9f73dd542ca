"""A say's one stop object, and T3's token loop that obeys it.

`Stop` has two levels, because a say can end at two places: after the chunk under way
(`after_chunk`: that chunk is finished and kept, the rest skipped) or at T3's next token
(`at_next_token`: what was sampled is still rendered by S3Gen and kept). The stop
button, a kernel interrupt, `cnb.stop()` and `unload` all ask the say's `Stop`; the
generation loop (speak.py) reads it between chunks and the token loop between tokens.

Upstream's sampler loops `for i in tqdm(range(max_new_tokens))`; `token_loop` stands
in for that tqdm (no text bar in the notebook). Upstream's loop takes no argument of
ours, so the say's `Stop` is bound to the thread that generates (`bound`, a context
variable), as are the progress hook and the streamer's tick.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Callable, Iterable, Iterator

__all__ = ["Stop", "bound", "token_loop", "each_token", "watching"]


class Stop:
    """One say's request to stop. Any thread may ask; levels only rise."""

    NONE, CHUNK, TOKEN = 0, 1, 2

    def __init__(self) -> None:
        self._level = Stop.NONE
        self._lock = threading.Lock()
        #: the chunk T3 samples now (speak.run sets it): a paragraph rendered in groups emits
        #: a chunk later than its T3 ends, so what was emitted does not say which is under way
        self.chunk = 0

    def _raise(self, level: int) -> None:
        with self._lock:
            self._level = max(self._level, level)

    def after_chunk(self) -> None:
        """End the say once the chunk under way is made (it is kept)."""
        self._raise(Stop.CHUNK)

    def at_next_token(self) -> None:
        """End the chunk under way at T3's next token (what was sampled is rendered and kept)."""
        self._raise(Stop.TOKEN)

    @property
    def requested(self) -> bool:
        """No chunk after the one under way."""
        return self._level >= Stop.CHUNK

    @property
    def now(self) -> bool:
        """T3 samples no further token."""
        return self._level >= Stop.TOKEN


_STOP: contextvars.ContextVar[Stop | None] = contextvars.ContextVar("chatterbox_nb_stop", default=None)
#: `tick()` between two sampled tokens: where a streamed say renders its pieces (engine/generation/streaming.py)
_EACH_TOKEN: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "chatterbox_nb_each_token", default=None
)
#: `progress(stage, tokens)`: ("tokens", n) after each sampled token, ("vocoder", n) when T3 is done
_PROGRESS: contextvars.ContextVar[Callable[[str, int], None] | None] = contextvars.ContextVar(
    "chatterbox_nb_progress", default=None
)


def token_loop(iterable: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Upstream's per-token tqdm, replaced; always yields the first item, so at least
    one token is sampled and upstream's concatenation after the loop has something."""
    stop, progress, tick = _STOP.get(), _PROGRESS.get(), _EACH_TOKEN.get()
    sampled = 0
    try:
        for n, item in enumerate(iterable):
            if n and stop is not None and stop.now:
                return
            if tick is not None:
                tick()
            sampled = n + 1
            if progress is not None:
                progress("tokens", sampled)
            yield item
    finally:
        if progress is not None:
            progress("vocoder", sampled)


@contextlib.contextmanager
def _bound(var: contextvars.ContextVar, value: Any) -> Iterator[None]:
    """`var` is `value` within this block (in this thread), as it was after."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def bound(stop: Stop) -> contextlib.AbstractContextManager[None]:
    """Within this block (in this thread), T3's token loop obeys `stop`."""
    return _bound(_STOP, stop)


def each_token(tick: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
    """Within this block (in this thread), T3's token loop calls `tick()` before each step."""
    return _bound(_EACH_TOKEN, tick)


def watching(progress: Callable[[str, int], None]) -> contextlib.AbstractContextManager[None]:
    """Within this block (and the say threads started in it), T3's token loop reports to
    `progress`; a display uses it for a moving status line. It must be cheap."""
    return _bound(_PROGRESS, progress)
