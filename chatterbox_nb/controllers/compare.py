"""Wires a `Comparison` to its grid view (duck-typed: comparison.py imports this module
lazily, so this one imports it not at all): cells become `CellView`s, the view's buttons
call the comparison back (favourite, save, stop), and each change of a cell refills its
box and the saved copy that a saved notebook keeps."""

from __future__ import annotations

import math
from typing import Any

from .. import config
from ..display.compare import CellView, GridView, saved_grid_bundle, shown
from ..utterance import Utterance


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def cell_views(cmp: Any) -> list[CellView]:
    """What each cell shows now, with its listening gain."""
    views = []
    for cell, gain in zip(cmp.cells, cmp.gains()):
        u = cell.utterance
        views.append(CellView(
            cell.index, {k: shown(v) for k, v in cell.values.items()}, cell.state, cell.say_line(),
            audio=None if u is None else u.audio, sample_rate=24000 if u is None else u.sample_rate,
            rtf=None if u is None else u.timings.get("rtf"), rms_dbfs=_finite(cell.rms_dbfs),
            peak_dbfs=_finite(cell.peak_dbfs), favourite=cell.favourite, error=cell.error, gain=gain,
            wav=b"" if u is None else _heard(u, gain),
        ))
    return views


def _heard(utt: Utterance, gain: float) -> bytes:
    """What the cell plays: the utterance's WAV, louder or softer for listening only."""
    if gain == 1.0:
        return utt.wav_bytes()
    return Utterance(utt.audio * gain, utt.sample_rate, utt.text, {}, {}).wav_bytes()


def is_dummy(cmp: Any) -> bool:
    weights = {str(c.kwargs.get("weights") or config.settings().weights) for c in cmp.cells}
    return all(w.startswith("dummy") for w in weights)


def saved_bundle(cmp: Any) -> dict[str, Any]:
    return saved_grid_bundle(cmp.text, cell_views(cmp), dummy=is_dummy(cmp))


def grid(cmp: Any) -> GridView:
    """The live grid of `cmp`, kept up to date from the thread that makes the cells."""
    view = GridView(cmp.text, cell_views(cmp), dummy=is_dummy(cmp),
                    on_favourite=lambda i, on: cmp.favourite(i, on),
                    on_save=lambda i: str(cmp.save(i)), on_stop=cmp.stop)

    def changed(cell: Any) -> None:
        views = cell_views(cmp)
        if cell is None:
            for v in views:  # the gains change as cells come: hear every cell at its final level
                if cmp.normalise and v.audio is not None:
                    view.update(v, views)
            view.finish(views)
        else:
            view.update(views[cell.index], views)

    cmp.on_change(changed)
    views = cell_views(cmp)
    for v in views:  # cells made before the view existed
        if v.state != "waiting":
            view.update(v, views)
    if cmp.done:
        view.finish(cell_views(cmp))  # afresh: the last cell may have come meanwhile
    return view


def show_saved_copy(cmp: Any) -> None:
    """Display the saved copy now (empty cells) and refill it as cells are made: what a
    saved notebook, nbconvert or a front end without our widgets shows."""
    from IPython.display import display

    handle = display(saved_bundle(cmp), raw=True, display_id=True)
    cmp.on_change(lambda cell: handle.update(saved_bundle(cmp), raw=True) if cell is None or cell.utterance else None)
    if cmp.done:
        handle.update(saved_bundle(cmp), raw=True)
