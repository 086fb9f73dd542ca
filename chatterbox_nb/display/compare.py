"""The comparison grid: a placeholder per cell at once, each filled when its cell is made.

A view only: it is fed plain data (`CellView`, one per cell) and callbacks (favourite,
save, stop), and knows nothing of the API. Two varied options lay out as rows × columns;
one, or more than two, as a table with a column per option. Each cell: its values, a
player, its waveform, length, RTF, loudness and peak, and buttons to play it, mark it a
favourite, save its WAV and copy the `%chatterbox say` line that makes it again. The
play and copy buttons act in the browser (an `onclick` on the cell's own `<audio>` and
the clipboard); the others call back into Python. `grid_html` is the static copy a saved
notebook keeps: the same grid with an `<audio>` per cell.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..engine.specs import BUILT_IN_VOICE
from .player import HIDE_SAVED_CSS, SAVED_ONLY, _banner_html, audio_tag
from .style import MUTED, TEXT, duration_label
from .waveform import waveform_svg

WAITING = "waiting…"
_STATE_LINE = {"waiting": "waiting…", "making": "making…", "skipped": "skipped (stopped)", "stopped": "stopped"}
_CELL_CSS = (
    "<style>.cnb-cell{border:1px solid var(--jp-border-color2,#ccc);border-radius:4px;padding:4px;"
    "margin:2px;min-width:220px}.cnb-cell audio{width:220px;height:32px}"
    ".cnb-cell button.cnb-js{font:12px sans-serif;padding:1px 6px;margin-right:4px}"
    ".cnb-compare-head{font:12px sans-serif;font-weight:bold}</style>"
)


@dataclass
class CellView:
    """What one cell shows; `audio` None until it is made."""

    index: int
    values: dict[str, str]
    state: str
    say_line: str
    audio: np.ndarray | None = None
    sample_rate: int = 24000
    rtf: float | None = None
    rms_dbfs: float | None = None
    peak_dbfs: float | None = None
    favourite: bool = False
    error: str = ""
    gain: float = 1.0
    #: the 16-bit WAV the cell plays: its audio times `gain` (the saved WAV is not this)
    wav: bytes = b""

    @property
    def label(self) -> str:
        return " · ".join(f"{k} {v}" for k, v in self.values.items())

    def stats(self) -> str:
        if self.audio is None:
            return html.escape(self.error or _STATE_LINE.get(self.state, self.state))
        parts = [duration_label(len(self.audio) / self.sample_rate)]
        if self.rtf is not None:
            parts.append(f"RTF {self.rtf:.2f}")
        parts.append(f"{self.rms_dbfs:.1f} dBFS RMS" if self.rms_dbfs is not None else "")
        parts.append(f"peak {self.peak_dbfs:.1f} dBFS" if self.peak_dbfs is not None else "")
        if self.gain != 1.0:
            parts.append(f"heard at {20 * np.log10(self.gain):+.1f} dB")
        if self.state == "stopped":
            parts.append("stopped")
        return " · ".join(p for p in parts if p)


def shown(value: Any) -> str:
    """An option's value as a cell shows it (None: the model's built-in voice)."""
    return BUILT_IN_VOICE if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _copy_button(line: str) -> str:
    return (f'<button class="cnb-js cnb-copy" title="copy the say line that makes this cell" data-line="{html.escape(line)}" '
            "onclick=\"navigator.clipboard&&navigator.clipboard.writeText(this.dataset.line);"
            "this.textContent='copied'\">copy say</button>")


_PLAY = ('<button class="cnb-js cnb-play" onclick="const a=this.closest(\'.cnb-cell\').querySelector(\'audio\');'
         'if(a){a.currentTime=0;a.play();}">&#9654; play</button>')


def cell_html(cell: CellView, *, static: bool) -> str:
    """One cell's body; `static`: with its `<audio>` (the saved copy) rather than a widget's."""
    head = f'<div style="font:12px sans-serif;{TEXT}"><b>{html.escape(cell.label or "the one cell")}</b></div>'
    body = ""
    if cell.audio is not None:
        body = (audio_tag(cell.wav) if static else "") + waveform_svg(cell.audio, width=220, height=32)
    star = " &#9733;" if cell.favourite and static else ""
    stats = f'<div class="cnb-cell-stats" style="font:11px sans-serif;{MUTED}">{cell.stats()}{star}</div>'
    line = f'<div style="font:10px monospace;{MUTED};word-break:break-all">{html.escape(cell.say_line)}</div>'
    return head + body + stats + (line if static else "")


def _axes(values: list[dict[str, str]]) -> list[str]:
    return list(values[0]) if values else []


def grid_html(text: str, cells: list[CellView], *, dummy: bool = False) -> str:
    """The static grid (saved notebooks, nbconvert): a table, an `<audio>` per made cell."""
    axes = _axes([c.values for c in cells])
    banner = _banner_html() if dummy else ""
    head = f'<div class="cnb-compare-head" style="{TEXT}">compare &#8220;{html.escape(text)}&#8221;</div>'
    rows = []
    if len(axes) == 2:
        cols = list(dict.fromkeys(c.values[axes[1]] for c in cells))
        rows.append("<tr><th></th>" + "".join(f"<th>{html.escape(axes[1])} {html.escape(v)}</th>" for v in cols) + "</tr>")
        for r in dict.fromkeys(c.values[axes[0]] for c in cells):
            tds = "".join(f'<td class="cnb-cell" style="vertical-align:top">{cell_html(c, static=True)}</td>'
                          for c in cells if c.values[axes[0]] == r)
            rows.append(f"<tr><th>{html.escape(axes[0])} {html.escape(r)}</th>{tds}</tr>")
    else:
        rows.append("<tr>" + "".join(f"<th>{html.escape(a)}</th>" for a in axes) + "<th></th></tr>")
        for c in cells:
            vals = "".join(f"<td>{html.escape(c.values[a])}</td>" for a in axes)
            rows.append(f'<tr>{vals}<td class="cnb-cell">{cell_html(c, static=True)}</td></tr>')
    table = f'<table class="cnb-compare-grid" style="{TEXT};font:12px sans-serif">{"".join(rows)}</table>'
    return f'<div class="chatterbox-compare">{_CELL_CSS}{banner}{head}{table}</div>'


def saved_grid_bundle(text: str, cells: list[CellView], *, dummy: bool = False) -> dict[str, Any]:
    """The saved copy: hidden where our widgets render, what plays elsewhere."""
    return {"text/html": f'<div class="{SAVED_ONLY}">{grid_html(text, cells, dummy=dummy)}</div>'}


class GridView:
    """The live grid: ipywidgets, one box per cell, refilled as `update(cell)` is called
    (from any thread: ipykernel sends widget changes from any thread)."""

    def __init__(self, text: str, cells: list[CellView], *, dummy: bool = False,
                 on_favourite: Callable[[int, bool], None] | None = None,
                 on_save: Callable[[int], str] | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        import ipywidgets as widgets

        self._w = widgets
        self.on_favourite, self.on_save = on_favourite, on_save
        self.status = widgets.HTML(self._status_line(cells))
        self.stop_button = widgets.Button(description="Stop", icon="stop", tooltip="stop after the cell under way",
                                          layout=widgets.Layout(width="80px"))
        if on_stop is not None:
            self.stop_button.on_click(lambda _b: on_stop())
        head = [widgets.HTML(HIDE_SAVED_CSS + _CELL_CSS)]
        if dummy:
            head.append(widgets.HTML(_banner_html()))
        head.append(widgets.HTML(f'<div class="cnb-compare-head" style="{TEXT}">compare &#8220;{html.escape(text)}&#8221;</div>'))
        head.append(widgets.HBox([self.stop_button, self.status]))
        self.boxes = [widgets.VBox([widgets.HTML(cell_html(c, static=False))]) for c in cells]
        for box in self.boxes:
            box.add_class("cnb-cell")
            box.add_class("cnb-cell-waiting")
        self.box = widgets.VBox([*head, self._layout(cells)])
        self.box.add_class("cnb-compare")

    def _layout(self, cells: list[CellView]) -> Any:
        w = self._w
        axes = _axes([c.values for c in cells])
        label = lambda s: w.HTML(f'<div class="cnb-compare-head" style="{TEXT}">{html.escape(s)}</div>')  # noqa: E731
        if len(axes) == 2:
            cols = list(dict.fromkeys(c.values[axes[1]] for c in cells))
            rows = list(dict.fromkeys(c.values[axes[0]] for c in cells))
            items = [label(""), *(label(f"{axes[1]} {v}") for v in cols)]
            for r in rows:
                items.append(label(f"{axes[0]} {r}"))
                items += [self.boxes[c.index] for c in cells if c.values[axes[0]] == r]
            template = f"auto repeat({len(cols)}, minmax(240px, max-content))"
            return w.GridBox(items, layout=w.Layout(grid_template_columns=template))
        lines = [w.HBox([label(a) for a in axes] + [label("")])]
        for c in cells:
            lines.append(w.HBox([label(c.values[a]) for a in axes] + [self.boxes[c.index]]))
        for line in lines:
            for child in line.children[: len(axes)]:
                child.layout.width = "110px"
        return w.VBox(lines)

    @staticmethod
    def _status_line(cells: list[CellView], finished: bool = False) -> str:
        made = sum(c.audio is not None for c in cells)
        doing = next((c.index for c in cells if c.state == "making"), None)
        what = f" · making cell {doing + 1}" if doing is not None else (" · finished" if finished else "")
        return f'<span class="cnb-compare-status" style="font:12px sans-serif;{MUTED}">{made}/{len(cells)} cells made{what}</span>'

    def update(self, cell: CellView, cells: list[CellView]) -> None:
        """Show `cell` as it is now (placeholder, making, or made with its player)."""
        w = self._w
        parts = [w.HTML(cell_html(cell, static=False))]
        if cell.audio is not None:
            header, *rest = parts
            player = w.Audio(value=cell.wav, format="wav", autoplay=False, loop=False)
            star = w.ToggleButton(value=cell.favourite, description="", icon="star",
                                  tooltip="keep as a favourite (Comparison.favourites)", layout=w.Layout(width="auto"))
            save = w.Button(description="WAV", icon="download", tooltip="save this cell's WAV (as made)",
                            layout=w.Layout(width="auto"))
            saved = w.HTML("")
            if self.on_favourite is not None:
                star.observe(lambda ch, i=cell.index: self.on_favourite(i, ch["new"]), names="value")
            if self.on_save is not None:
                def show_saved(_b: Any, i: int = cell.index, line: Any = saved) -> None:
                    line.value = self._saved(i)

                save.on_click(show_saved)
            js = w.HTML(_PLAY + _copy_button(cell.say_line))
            buttons = w.HBox([js, star, save], layout=w.Layout(flex_flow="row wrap", align_items="center"))
            parts = [header, player, buttons, saved]
        box = self.boxes[cell.index]
        box.children = parts
        for name in [c for c in box._dom_classes if c.startswith("cnb-cell-")]:
            box.remove_class(name)
        box.add_class(f"cnb-cell-{cell.state}")
        self.status.value = self._status_line(cells)

    def _saved(self, index: int) -> str:
        try:
            path = self.on_save(index)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - said in the cell
            return f'<span style="font:11px sans-serif;color:var(--jp-error-color1,#b00020)">{html.escape(str(exc))}</span>'
        return f'<span style="font:11px sans-serif;{MUTED}">saved {html.escape(str(path))}</span>'

    def finish(self, cells: list[CellView]) -> None:
        self.status.value = self._status_line(cells, finished=True)
        self.stop_button.disabled = True

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.box._repr_mimebundle_()
