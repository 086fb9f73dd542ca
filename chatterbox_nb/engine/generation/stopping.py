"""A say's request to stop now, seen by T3's token loop.

Upstream's sampler loops `for i in tqdm(range(max_new_tokens))`; `token_loop` stands
in for that tqdm (no text bar in the notebook) and ends the loop at the next token
once the say running in this thread asks to be cut. What was sampled is still
rendered by S3Gen, so a cut utterance keeps its audio. The request is a context
variable: each say's thread sees only its own.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterable, Iterator

_CUT: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("chatterbox_nb_cut", default=None)
#: `progress(stage, tokens)`: ("tokens", n) after each sampled token, ("vocoder", n) when T3 is done
#: `tick()` between two sampled tokens: where a streamed say renders its pieces (engine/generation/streaming.py)
_EACH_TOKEN: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "chatterbox_nb_each_token", default=None
)
_PROGRESS: contextvars.ContextVar[Callable[[str, int], None] | None] = contextvars.ContextVar(
    "chatterbox_nb_progress", default=None
)


def token_loop(iterable: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Upstream's per-token tqdm, replaced; always yields the first item, so at least
    one token is sampled and upstream's concatenation after the loop has something."""
    cut, progress, tick = _CUT.get(), _PROGRESS.get(), _EACH_TOKEN.get()
    sampled = 0
    try:
        for n, item in enumerate(iterable):
            if n and cut is not None and cut():
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


def current_cut() -> Callable[[], bool] | None:
    """The stop request T3 sees in this thread (None: nothing can cut it)."""
    return _CUT.get()


@contextlib.contextmanager
def _bound(var: contextvars.ContextVar, value: Any) -> Iterator[None]:
    """`var` is `value` within this block (in this thread), as it was after."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def cuttable(cut: Callable[[], bool]) -> contextlib.AbstractContextManager[None]:
    """Within this block (in this thread), T3 stops sampling as soon as `cut()` is true."""
    return _bound(_CUT, cut)


def each_token(tick: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
    """Within this block (in this thread), T3's token loop calls `tick()` before each step."""
    return _bound(_EACH_TOKEN, tick)


def watching(progress: Callable[[str, int], None]) -> contextlib.AbstractContextManager[None]:
    """Within this block (and the say threads started in it), T3's token loop reports to
    `progress`; a display uses it for a moving status line. It must be cheap."""
    return _bound(_PROGRESS, progress)
