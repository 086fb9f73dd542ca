"""The one way chatterbox_nb changes an upstream object, and the one way it puts it back.

A `Seam` names the upstream attribute it touches and why. Two kinds, both context managers
that restore exactly what was there before (like accelerate's `add_hook_to_module` keeping
`_old_forward`):

- `Seam.shadowed(obj, make)`: one object's method, for one call. An instance attribute made
  from the current method shadows the class's; on exit the instance's `__dict__` holds what it
  held before (another seam's wrapper, or nothing). Nested seams on the same attribute stack.
- `Seam.swapped(value)`: a module global (T3's `torch`, `tqdm`), which is process-wide, so
  concurrent users are counted: the first puts `value` in, the last takes it out, unless
  someone else replaced it meanwhile.

Nothing outside engine/seams/ assigns to chatterbox-tts's objects (tests/test_architecture.py).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

__all__ = ["Seam"]

_ABSENT = object()


@dataclass(eq=False)
class Seam:
    """One patch point: `owner` is the upstream module or class (dotted path) whose
    `attribute` the seam replaces, `why` says what for (shown when its contract breaks)."""

    name: str
    owner: str
    attribute: str
    why: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _users: int = field(default=0, repr=False)
    _saved: Any = field(default=_ABSENT, repr=False)

    @property
    def where(self) -> str:
        return f"{self.owner}.{self.attribute}"

    def shadowed(self, obj: Any, make: Callable[[Callable], Callable]) -> contextlib.AbstractContextManager[None]:
        """Within this block, `obj.<attribute>` is `make(<what it was>)`. The caller holds the
        object (the model's lock), so no other thread sees the wrapper."""
        return _shadowed(obj, self.attribute, make)

    @contextlib.contextmanager
    def swapped(self, value: Any) -> Iterator[None]:
        """Within this block (and while any other thread is in one), the owner module's
        global `<attribute>` is `value`; after the last block ends, its own is back. Every
        user of one seam swaps in the same `value` (the first one in stays until the last leaves)."""
        module = importlib.import_module(self.owner)
        with self._lock:
            if self._users == 0:
                self._saved = vars(module).get(self.attribute, _ABSENT)
                setattr(module, self.attribute, value)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    if vars(module).get(self.attribute, _ABSENT) is value:  # not replaced by someone else meanwhile
                        _restore(module, self.attribute, self._saved)
                    self._saved = _ABSENT


@contextlib.contextmanager
def _shadowed(obj: Any, attribute: str, make: Callable[[Callable], Callable]) -> Iterator[None]:
    before = vars(obj).get(attribute, _ABSENT)
    setattr(obj, attribute, make(getattr(obj, attribute)))
    try:
        yield
    finally:
        _restore(obj, attribute, before)


def _restore(obj: Any, attribute: str, before: Any) -> None:
    if before is _ABSENT:
        vars(obj).pop(attribute, None)  # the class's own attribute shows through again
    else:
        setattr(obj, attribute, before)
