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


def token_loop(iterable: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Upstream's per-token tqdm, replaced; always yields the first item, so at least
    one token is sampled and upstream's concatenation after the loop has something."""
    cut = _CUT.get()
    for n, item in enumerate(iterable):
        if n and cut is not None and cut():
            return
        yield item


@contextlib.contextmanager
def cuttable(cut: Callable[[], bool]) -> Iterator[None]:
    """Within this block (in this thread), T3 stops sampling as soon as `cut()` is true."""
    token = _CUT.set(cut)
    try:
        yield
    finally:
        _CUT.reset(token)
