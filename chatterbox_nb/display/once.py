"""Results that render whether or not the cell assigns them.

A magic displays its result itself (so `u = %chatterbox say ...` renders) and then
returns it, which would render it a second time through the displayhook. The object
remembers the cell it was shown in and skips that one repeat.
"""

from __future__ import annotations

from typing import Any


def _cell() -> int | None:
    from IPython import get_ipython

    return getattr(get_ipython(), "execution_count", None)


class ShownOncePerCell:
    _skip_display_in_cell: int | None = None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        count = _cell()
        if count is not None and self._skip_display_in_cell == count:
            self._skip_display_in_cell = None
            return
        display(self._repr_mimebundle_(), raw=True)
        for bundle in self._more_bundles():
            display(bundle, raw=True)

    def _more_bundles(self) -> list[dict[str, Any]]:
        """Outputs shown after the main one (a player's saved copy)."""
        return []

    def mark_shown(self) -> None:
        """Another display already stands for this object in the current cell."""
        self._skip_display_in_cell = _cell()

    def show(self) -> Any:
        """Display now, and not again when this cell's value is the same object."""
        from IPython.display import display

        display(self)
        self._skip_display_in_cell = _cell()
        return self
