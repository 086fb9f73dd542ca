"""`cnb.compare`: one text said with several values of some say options, side by side.

Each option may take a list; the cells are the product of the lists, every other option
held equal. A cell is one `api.say` with that cell's keywords, so the `%chatterbox say`
line it shows reproduces it exactly (the same seed, the same model, the same code path);
without a `seed`, one is drawn for the whole grid, so every cell is still reproducible.
All cells are checked before the first is made (a mistake costs nothing), then made one
by one in a background thread: the notebook stays free while the grid fills. Stopping
(`cmp.stop()`, `cnb.stop()`, the stop button while waiting, the grid's Stop) finishes
the cell under way and keeps every cell made.
"""

from __future__ import annotations

import contextvars
import itertools
import math
import secrets
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import config, options
from ._state import STATE
from .engine.specs import BUILT_IN_VOICE
from .display.compare import shown as _shown
from .display.once import ShownOncePerCell
from .errors import ChatterboxError, InvalidOption, Stopped
from .utterance import Utterance

__all__ = ["compare", "Comparison", "Cell", "BUILT_IN_VOICE"]

#: the model's own voice, as a value of `voice` beside registered ones
#: say options a grid does not take: each cell is saved from its own button or `Comparison.save`
NOT_COMPARED = ("out", "autoplay")
_FLAGS = {o.name: o for o in options.SAY_OPTIONS}


def dbfs(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else -math.inf


@dataclass
class Cell:
    """One combination: its varied values, the say keywords it runs with, and its result."""

    index: int
    values: dict[str, Any]
    kwargs: dict[str, Any]
    text: str
    utterance: Utterance | None = None
    #: waiting, making, done, stopped (its say was cut), skipped (the grid stopped first), failed
    state: str = "waiting"
    error: str = ""
    favourite: bool = False

    @property
    def label(self) -> str:
        return " · ".join(f"{name} {_shown(value)}" for name, value in self.values.items())

    def say_line(self) -> str:
        """The `%chatterbox say` line that makes this cell again, bit for bit."""
        words = ["%chatterbox", "say", shlex.quote(self.text)]
        for name, value in self.kwargs.items():
            if value is None:
                continue
            flag = _FLAGS[name].flags[-1]
            if isinstance(value, bool):
                words.append(flag if value else f"--no-{flag[2:]}")
            else:
                words += [flag, shlex.quote(str(value))]
        # IPython expands `$name` and `{expr}` in a magic's line: doubled, they stay as typed
        return " ".join(words).replace("$", "$$").replace("{", "{{").replace("}", "}}")

    @property
    def rms_dbfs(self) -> float:
        audio = self.utterance.audio if self.utterance is not None else np.zeros(0)
        return dbfs(float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))) if len(audio) else -math.inf

    @property
    def peak_dbfs(self) -> float:
        audio = self.utterance.audio if self.utterance is not None else np.zeros(0)
        return dbfs(float(np.max(np.abs(audio)))) if len(audio) else -math.inf

    def row(self) -> dict[str, Any]:
        """One line of `Comparison.to_dataframe()`."""
        u = self.utterance
        return {
            **self.values, "state": self.state, "favourite": self.favourite,
            "audio_s": None if u is None else u.duration, "rtf": None if u is None else u.timings.get("rtf"),
            "rms_dbfs": self.rms_dbfs, "peak_dbfs": self.peak_dbfs, "say": self.say_line(), "error": self.error,
        }




def plan(text: Any, given: dict[str, Any]) -> tuple[str, dict[str, tuple[Any, ...]], list[Cell]]:
    """Every cell, checked as its say would check it, before anything is made: the
    text, the keywords, the cap, each value (one sentence for the first bad one)."""
    text = options.check_text(text)
    valid = [n for n in options.SAY_NAMES if n not in NOT_COMPARED]
    options.check_keywords("compare", given, valid)
    fixed, varied = options.split_several(given)
    count = math.prod(len(v) for v in varied.values())
    cap = config.settings().compare_max_cells
    if count > cap:
        sizes = " × ".join(f"{len(v)} {n}" for n, v in varied.items())
        raise InvalidOption(f"compare would make {count} cells ({sizes}), more than the cap of {cap}: give fewer "
                            f"values, or raise %config Chatterbox.compare_max_cells.")
    if fixed.get("seed") is None and "seed" not in varied:
        fixed["seed"] = secrets.randbelow(2**31)  # one seed for every cell: each is reproducible
    cells = []
    for index, combo in enumerate(itertools.product(*varied.values())):
        values = dict(zip(varied, combo))
        kwargs = {**fixed, **values}
        if kwargs.get("voice") == BUILT_IN_VOICE:
            kwargs["voice"] = None
            values["voice"] = BUILT_IN_VOICE
        _drop_language(kwargs)
        options.say_options(**kwargs)  # each value checked as say checks it: one sentence
        cells.append(Cell(index, values, {k: v for k, v in kwargs.items() if v is not None}, text))
    from .voices_api import voices

    for voice in {c.kwargs.get("voice") for c in cells}:
        voices.resolve(voice)  # an unknown voice is refused now, not in cell 3
    return text, varied, cells


def _drop_language(kwargs: dict[str, Any]) -> None:
    """`-m english multilingual --lang fr`: the language goes to the models that take one."""
    from .engine.specs import SPECS

    model = (kwargs.get("model") or config.settings().model).strip().lower()
    if kwargs.get("lang") is not None and model in SPECS and not SPECS[model].takes_language:
        if str(kwargs["lang"]).strip().lower() != "en":
            kwargs["lang"] = None


class Comparison(ShownOncePerCell):
    """The cells of one `compare`, filled by a background thread; displays as the grid."""

    def __init__(self, text: str, varied: dict[str, tuple[Any, ...]], cells: list[Cell], *, normalise: bool = False) -> None:
        self.text = text
        self.varied = varied
        self.cells = cells
        self.normalise = normalise
        with STATE.lock:
            self.name = f"compare {1 + len(set(getattr(STATE.history, 'tags', {}).values()))}"
        self._stop = threading.Event()
        self._done = threading.Event()
        self._listeners: list[Callable[[Cell | None], None]] = []
        self._view: Any = None
        ctx = contextvars.copy_context()
        self.thread = threading.Thread(target=ctx.run, args=(self._run,), name="chatterbox_nb-compare", daemon=True)

    # -- making the cells ----------------------------------------------------------------

    def start(self) -> "Comparison":
        with STATE.lock:  # listed for cnb.stop() and unload, as a long say is
            STATE.says.append(self)
            self.thread.start()
        return self

    def _run(self) -> None:
        from . import api

        token = _quiet_players()
        try:
            for cell in self.cells:
                if self._stop.is_set():
                    cell.state = "skipped"
                    self._tell(cell)
                    continue
                cell.state = "making"
                self._tell(cell)
                try:
                    utt = api.say(self.text, **cell.kwargs)
                except Stopped:
                    cell.state = "stopped"
                except ChatterboxError as exc:
                    cell.state, cell.error = "failed", str(exc)
                except Exception as exc:  # noqa: BLE001 - shown in its cell; the grid goes on
                    cell.state, cell.error = "failed", f"{type(exc).__name__}: {exc}"
                else:
                    cell.utterance = utt
                    cell.state = "stopped" if utt.timings.get("stopped") else "done"
                    with STATE.lock:
                        STATE.history.tag(utt, self.name)
                self._tell(cell)
        finally:
            if token is not None:
                token[0].reset(token[1])
            with STATE.lock:
                if self in STATE.says:
                    STATE.says.remove(self)
            self._tell(None)  # the views finish first: after wait() the grid says so
            self._done.set()

    def _tell(self, cell: Cell | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(cell)
            except Exception:  # noqa: BLE001 - a view's failure must not stop the grid
                pass

    def on_change(self, listener: Callable[[Cell | None], None]) -> None:
        """`listener(cell)` after each change of a cell, `listener(None)` once at the end."""
        self._listeners.append(listener)

    def stop(self) -> None:
        """Finish the cell under way, keep every cell made, skip the rest."""
        self._stop.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self) -> "Comparison":
        """Block until every cell is made; the stop button stops the grid after the cell
        under way (a second press stops waiting)."""
        _wait(self)
        return self

    # -- the results ---------------------------------------------------------------------

    @property
    def utterances(self) -> list[Utterance]:
        return [c.utterance for c in self.cells if c.utterance is not None]

    @property
    def favourites(self) -> list[Cell]:
        return [c for c in self.cells if c.favourite]

    def favourite(self, index: int, on: bool = True) -> Cell:
        self.cells[index].favourite = on  # no change told: the cell's player keeps playing
        return self.cells[index]

    def save(self, index: int, path: str | Path | None = None) -> Path:
        """Write cell `index`'s WAV (as made: listening normalisation never touches it)."""
        cell = self.cells[index]
        if cell.utterance is None:
            raise InvalidOption(f"Cell {index} ({cell.label}) has no audio yet ({cell.state}).")
        if path is None:
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cell.label.replace(" · ", "_"))
            path = Path(f"{self.name.replace(' ', '-')}_{safe}.wav")
        return cell.utterance.save(path)

    def gains(self) -> list[float]:
        """Listening gains that bring every cell to the grid's median loudness (1.0 each
        unless `normalise`), capped so that no peak clips."""
        levels = [c.rms_dbfs for c in self.cells]
        made = [x for x in levels if math.isfinite(x)]
        if not self.normalise or not made:
            return [1.0] * len(self.cells)
        target = float(np.median(made))
        out = []
        for cell, level in zip(self.cells, levels):
            if not math.isfinite(level):
                out.append(1.0)
                continue
            gain = 10 ** ((target - level) / 20)
            out.append(min(gain, 10 ** (-cell.peak_dbfs / 20)) if math.isfinite(cell.peak_dbfs) else gain)
        return out

    def to_dataframe(self) -> Any:
        """One row a cell: its varied values, state, favourite, length, RTF, loudness, say line."""
        try:
            import pandas as pd
        except ImportError:
            raise ChatterboxError("to_dataframe() needs pandas (pip install pandas); rows() gives the same as dicts.") from None
        return pd.DataFrame(self.rows())

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.cells]

    def summary(self) -> str:
        made = sum(c.utterance is not None for c in self.cells)
        axes = " × ".join(f"{n} ({', '.join(_shown(v) for v in vals)})" for n, vals in self.varied.items()) or "one cell"
        return f"Comparison {self.name!r} of {self.text[:40]!r}: {axes}; {made}/{len(self.cells)} cells made"

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    # -- display: the live grid in a kernel, and its saved copy -----------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .controllers import compare as controller
        from .display.player import _in_kernel

        bundle: dict[str, Any] = {"text/plain": self.summary()}
        if not _in_kernel():
            return {**bundle, "text/html": controller.saved_bundle(self)["text/html"]}
        if self._view is None:
            self._view = controller.grid(self)
        bundle.update({k: v for k, v in self._view._repr_mimebundle_().items() if k != "text/plain"})
        return bundle

    def _ipython_display_(self) -> None:
        from .display.once import _cell
        from .display.player import _in_kernel

        if self._skip_display_in_cell is not None and self._skip_display_in_cell == _cell():
            self._skip_display_in_cell = None
            return
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        if _in_kernel():
            from .controllers.compare import show_saved_copy

            show_saved_copy(self)


def _wait(cmp: Comparison) -> None:
    """Block until the grid is made; the stop button stops it after the cell under way."""
    pressed = 0
    while True:
        try:
            if cmp._done.wait(0.1):
                return
        except KeyboardInterrupt:
            pressed += 1
            cmp.stop()
            if pressed > 1:
                return


def _quiet_players() -> tuple[Any, Any] | None:
    """A cell's say shows no player of its own (a long or streamed one would): the grid shows it."""
    from .display.player import _in_kernel

    if not _in_kernel():
        return None
    from .display.live import SHOW

    return SHOW, SHOW.set(lambda player: None)


def compare(text: str, *, wait: bool | None = None, normalise: bool = False, **say_options: Any) -> Comparison:
    """Say `text` once for every combination of the say options given as lists, every
    other option held equal: `compare("Hi.", seed=[0, 1, 2], exaggeration=[0.3, 0.7])`.

    Returns the `Comparison` at once in a notebook (its grid fills as each cell is made;
    `wait=True` blocks), after the last cell elsewhere. `normalise` evens the loudness
    for listening only; saved WAVs are as made."""
    text, varied, cells = plan(text, say_options)
    cmp = Comparison(text, varied, cells, normalise=bool(normalise))
    from .display.player import _in_kernel

    if wait and _in_kernel():
        cmp.show()  # the grid first, filling while this waits
    cmp.start()
    if wait or (wait is None and not _in_kernel()):
        _wait(cmp)
    return cmp
