"""`%chatterbox history`: this kernel's utterances as a table, each row with Replay and Save.

In a kernel the table is ipywidgets (a grid of labels and buttons; Replay shows that
utterance's player under the table, Save writes a WAV to the path in the row's box);
in a terminal, and in a saved notebook, it is a short text or HTML table. The view is fed
the utterances and a `save` callback; `controllers/history.py` fetches them and wires Save.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable, Sequence

from ..engine.specs import BUILT_IN_VOICE
from ..errors import AudioReleased
from .player import _in_kernel, utterance_widget

COLUMNS = ("#", "text", "model", "voice", "params", "audio", "total", "RTF")


def default_name(index: int) -> str:
    return f"utterance_{index}.wav"


def _params(utt: Any) -> str:
    p = utt.params
    keys = (("seed", "seed"), ("exaggeration", "exag"), ("cfg_weight", "cfg"), ("temperature", "temp"), ("max_tokens", "max"))
    return " ".join(f"{short}={p[key]:g}" if isinstance(p[key], float) else f"{short}={p[key]}"
                    for key, short in keys if p.get(key) is not None)


def row(index: int, utt: Any) -> tuple[str, ...]:
    """One row of the table, as strings (the text shortened to 40 characters)."""
    text = utt.text if len(utt.text) <= 40 else utt.text[:37] + "..."
    model = utt.params.get("model", "?") + (f" ({utt.params['lang']})" if utt.params.get("lang") else "")
    t = utt.timings
    return (
        str(index), text, model, utt.params.get("voice") or BUILT_IN_VOICE, _params(utt),
        f"{utt.duration:.2f} s", f"{float(t.get('total_s') or 0):.2f} s", f"{float(t.get('rtf') or 0):.2f}",
    )


def text_table(utts: Sequence[Any]) -> str:
    if not utts:
        return "No utterances in this kernel yet (%chatterbox say TEXT)."
    rows = [COLUMNS, *(row(i, u) for i, u in enumerate(utts))]
    widths = [max(len(r[c]) for r in rows) for c in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def html_table(utts: Sequence[Any]) -> str:
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row(i, u)) + "</tr>" for i, u in enumerate(utts))
    return f'<table class="cnb-history" style="font:12px sans-serif"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


#: what Save does: (utterance, its index, the text in the row's path box) -> the file written
Saver = Callable[[Any, int, str], Path]


class History:
    """A snapshot of the kernel's utterances; renders as the table. Without `save`, the
    rows have Replay only."""

    def __init__(self, utts: Sequence[Any], save: Saver | None = None) -> None:
        self.utts = list(utts)
        self.save = save
        self._widget: Any = None

    def __len__(self) -> int:
        return len(self.utts)

    def __repr__(self) -> str:
        return text_table(self.utts)

    def widget(self) -> Any:
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        replay = widgets.VBox([])
        cells: list[Any] = [widgets.HTML(f"<b>{c}</b>") for c in COLUMNS] + [widgets.HTML("<b>replay / save</b>")]
        for i, utt in enumerate(self.utts):
            cells += [widgets.HTML(html.escape(c)) for c in row(i, utt)]
            cells.append(self._actions(i, utt, replay))
        grid = widgets.GridBox(
            cells,
            layout=widgets.Layout(grid_template_columns=f"repeat({len(COLUMNS)}, max-content) auto", grid_gap="2px 12px"),
        )
        grid.add_class("cnb-history")
        self._widget = widgets.VBox([grid, replay])
        return self._widget

    def _actions(self, i: int, utt: Any, replay: Any) -> Any:
        import ipywidgets as widgets

        play = widgets.Button(description="Replay", icon="play", layout=widgets.Layout(width="auto"))
        note = widgets.HTML("")
        play.add_class("cnb-replay")

        def on_play(_: Any) -> None:
            try:
                replay.children = [widgets.HTML(f"<b>#{i}</b>"), utterance_widget(utt)]
            except AudioReleased as exc:
                note.value = html.escape(str(exc))

        play.on_click(on_play)
        save = self.save
        if save is None:
            return widgets.HBox([play, note])
        path = widgets.Text(placeholder=default_name(i), layout=widgets.Layout(width="180px"))
        keep = widgets.Button(description="Save", icon="save", layout=widgets.Layout(width="auto"))
        keep.add_class("cnb-save")

        def on_save(_: Any) -> None:
            try:
                note.value = f"saved {html.escape(str(save(utt, i, path.value)))}"
            except (OSError, AudioReleased) as exc:
                note.value = f'<span style="color:var(--jp-error-color1,#b00020)">{html.escape(str(exc))}</span>'

        keep.on_click(on_save)
        return widgets.HBox([play, path, keep, note])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        if not self.utts:
            return bundle
        bundle["text/html"] = html_table(self.utts)
        if _in_kernel():
            view = self.widget()._repr_mimebundle_()
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle

