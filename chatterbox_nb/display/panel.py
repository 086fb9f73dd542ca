"""The `ui` panel's view: its widgets and HTML, fed with data and callbacks.

Text box, one widget per declared say option that has a place in the panel (pickers,
sliders, boxes; the rarer ones in an "advanced" accordion), a Generate button, a
status line, the result and the models in memory. Every widget is made from the
option's declaration (`options.Option`: type, range, step, label), so the panel has
no table of its own. What a click does lives in `controllers/panel.py`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .player import HIDE_SAVED_CSS, utterance_widget
from .style import ERROR, MUTED, TEXT

if TYPE_CHECKING:
    from ..options import Option

_STYLE = {"description_width": "110px"}
_STREAM_CHOICES = [("auto", None), ("on", True), ("off", False)]


def option_widget(o: Option, value: Any, choices: Sequence[Any] | None = None) -> Any:
    """The widget for one option, from its declaration: a picker for choices (and for
    auto/on/off), a slider for a float range, a bounded box for an int with a default,
    else a text box whose empty value means the option's `unset`."""
    import ipywidgets as widgets

    common = {"description": o.caption, "style": _STYLE, "tooltip": o.help_text}
    if o.negatable:
        return widgets.Dropdown(options=_STREAM_CHOICES, value=value, **common)
    choices = choices if choices is not None else o.choices
    if choices is not None:
        return widgets.Dropdown(options=list(choices), value=value, **common)
    if o.type is float:
        low = o.low + (o.step or 0) if o.above else o.low  # `above`: the smallest step over the refused low
        return widgets.FloatSlider(value=value, min=low, max=o.high, step=o.step, layout=widgets.Layout(width="520px"),
                                   continuous_update=False, **common)
    if o.type is int and o.default is not None:
        return widgets.BoundedIntText(value=value, min=int(o.low), max=int(o.high), **common)
    return widgets.Text(value="" if value is None else str(value), placeholder=o.unset, **common)


def _value(widget: Any) -> Any:
    """A widget's value as the option takes it: an empty text box is None (the default)."""
    value = widget.value
    if isinstance(value, str) and not getattr(widget, "options", None):
        return value.strip() or None
    return value


class PanelView:
    """The widgets; `inputs` holds one per option, by its say keyword."""

    def __init__(self, text: str, fields: Sequence[Option], values: Mapping[str, Any],
                 choices: Mapping[str, Sequence[Any]]) -> None:
        import ipywidgets as widgets

        self.fields = {o.name: o for o in fields}
        self.text = widgets.Textarea(value=text, placeholder="Text to say",
                                     layout=widgets.Layout(width="520px", height="64px"))
        self.inputs = {o.name: option_widget(o, values.get(o.name), choices.get(o.name)) for o in fields}
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.add_class("cnb-generate")
        self.status = widgets.HTML("")
        self.bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0,
                                         layout=widgets.Layout(width="320px", height="10px", visibility="hidden"))
        self.result = widgets.VBox([])
        self.result.add_class("cnb-ui-result")
        self.models = widgets.HTML("")
        main = [o.name for o in fields if o.panel == "main"]
        pickers = [self.inputs[n] for n in main if isinstance(self.inputs[n], widgets.Dropdown)]
        sliders = [self.inputs[n] for n in main if isinstance(self.inputs[n], widgets.FloatSlider)]
        beside = [self.inputs[n] for n in main if self.inputs[n] not in pickers + sliders]  # the seed
        advanced = widgets.Accordion([widgets.VBox([self.inputs[o.name] for o in fields if o.panel == "advanced"])])
        advanced.set_title(0, "advanced")
        advanced.selected_index = None
        self.box = widgets.VBox([
            widgets.HTML(f'{HIDE_SAVED_CSS}<b style="font:13px sans-serif;{TEXT}">Chatterbox</b>'),
            self.text,
            widgets.HBox(pickers),
            *sliders,
            advanced,
            widgets.HBox([*beside, self.generate_button]),
            widgets.HBox([self.status, self.bar]),
            self.result,
            self.models,
        ])
        self.box.add_class("cnb-ui")

    @property
    def sliders(self) -> dict[str, Any]:
        import ipywidgets as widgets

        return {k: w for k, w in self.inputs.items() if isinstance(w, widgets.FloatSlider)}

    def values(self) -> dict[str, Any]:
        """Every input's value, by say keyword (unchecked: `say` checks them)."""
        return {name: _value(w) for name, w in self.inputs.items()}

    def set_choices(self, name: str, choices: Sequence[Any], fallback: Any) -> None:
        """New choices for a picker, keeping its value where it is still one of them."""
        widget = self.inputs[name]
        current = widget.value
        widget.options = list(choices)
        widget.value = current if current in widget.options else fallback

    def on_generate(self, callback: Callable[[], Any]) -> None:
        self.generate_button.on_click(lambda _b: callback())

    def on_change(self, name: str, callback: Callable[[dict[str, Any]], Any]) -> None:
        self.inputs[name].observe(callback, names="value")

    # -- the status line and the result ----------------------------------------------------

    def set_busy(self, busy: bool) -> None:
        button = self.generate_button
        button.disabled = busy
        button.description, button.icon = ("Generating\u2026", "spinner spin") if busy else ("Generate", "play")
        if busy:
            self.bar.value, self.bar.bar_style = 0.0, "info"
        self.bar.layout.visibility = "visible" if busy else "hidden"

    def show_progress(self, what: str, elapsed_s: float, fraction: float) -> None:
        self.bar.value = fraction
        self.status.value = (f'<span style="font:12px sans-serif;{TEXT}">&#8987; Generating\u2026 {html.escape(what)} '
                             f"\u00b7 {elapsed_s:.1f} s</span>")

    def show_done(self, elapsed_s: float) -> None:
        self.status.value = f'<span style="font:12px sans-serif;{TEXT}">&#10003; done in {elapsed_s:.2f} s</span>'

    def show_error(self, message: str) -> None:
        line = message.splitlines()[0] if message else "failed"
        self.status.value = (f'<span class="cnb-ui-error" style="font:12px sans-serif;{ERROR}">&#10007; '
                             f"{html.escape(line)}</span>")

    def show_utterance(self, utt: Any) -> None:
        self.result.children = [utterance_widget(utt)]

    def show_player(self, player: Any) -> None:
        """A long text's progressive player: it plays while the rest is made."""
        self.result.children = [player.box]

    def show_models(self, line: str) -> None:
        self.models.value = f'<div style="font:11px sans-serif;{MUTED}">{html.escape(line)}</div>'
