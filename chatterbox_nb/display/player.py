"""The inline player: an audio widget, the timing widget, and a static copy for saved notebooks.

In a kernel a say shows two outputs: the widget view (live in JupyterLab, Notebook 7,
VS Code, Colab) and a *saved copy*, plain HTML with a self-contained `<audio>` (a data
URI), the waveform and the timings. Where our widgets render they hide every saved copy
with one CSS rule (`HIDE_SAVED_CSS`), so a live page shows one player; where they do
not (a saved notebook reopened without a kernel, nbconvert's HTML, GitHub, nbviewer,
a front end whose widget manager fails) the copy is what plays. One output with both
mimetypes would not do: nbconvert and nbviewer prefer the widget view whenever the
widget state was saved (nbclient saves it), and show nothing without the network.
Outside a kernel (terminal IPython) only the text summary is meaningful.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from .style import MUTED, TEXT, duration_label
from .timings import timings_html, timings_widget
from .waveform import waveform_svg

DUMMY_BANNER = "Noise from dummy weights: random values in the real model, not speech."


def _in_kernel() -> bool:
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


SAVED_ONLY = "cnb-saved-only"
#: in every widget view of ours: a live page shows the widget, not the saved copy beside it
HIDE_SAVED_CSS = f"<style>.{SAVED_ONLY}{{display:none}}</style>"
#: text that reads in JupyterLab's light and dark themes (its CSS variables, with fallbacks)


def _banner_html() -> str:
    return (
        '<div class="cnb-banner" style="font:12px sans-serif;color:var(--jp-content-font-color1,#222);'
        "background:transparent;border:1px solid var(--jp-warn-color1,#ff9800);border-left-width:4px;"
        'padding:2px 6px;border-radius:3px;display:inline-block">'
        f'<span style="color:var(--jp-warn-color1,#e65100)">&#9888;</span> {html.escape(DUMMY_BANNER)}</div>'
    )


def _text_line(text: str, seconds: float | None) -> str:
    length = (
        f' <span class="cnb-duration" style="{MUTED}">&middot; {duration_label(seconds)}</span>'
        if seconds is not None else ""
    )
    return f'<div style="font:12px sans-serif;margin:2px 0;{TEXT}">&#8220;{html.escape(text)}&#8221;{length}</div>'


def audio_tag(wav: bytes, *, autoplay: bool = False) -> str:
    """A self-contained player: the WAV as a data URI; `preload="metadata"` shows its length at once."""
    src = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
    return f'<audio controls preload="metadata"{" autoplay" if autoplay else ""} src="{src}"></audio>'


def static_html(utt: Any, *, autoplay: bool | None = None) -> str:
    from .transcript import transcript_html

    banner = _banner_html() if utt.dummy else ""
    play = utt.autoplay if autoplay is None else autoplay
    return (
        f'<div class="chatterbox-utterance">{banner}{_text_line(utt.text, utt.duration)}'
        f"{audio_tag(utt.wav_bytes(), autoplay=play)}{transcript_html(getattr(utt, 'chunks', ()))}"
        f"{waveform_svg(utt.audio)}{timings_html(utt.timings)}</div>"
    )


def saved_bundle(utt: Any | None) -> dict[str, Any]:
    """The saved copy of a result (an empty one for None): static HTML, hidden where our widgets render."""
    body = "" if utt is None else static_html(utt, autoplay=False)  # a reopened notebook stays quiet
    return {"text/html": f'<div class="{SAVED_ONLY}">{body}</div>'}


def utterance_widget(utt: Any) -> Any:
    import ipywidgets as widgets

    children = []
    if utt.dummy:
        children.append(widgets.HTML(_banner_html()))
    children.append(widgets.HTML(HIDE_SAVED_CSS + _text_line(utt.text, utt.duration)))
    children.append(widgets.Audio(value=utt.wav_bytes(), format="wav", autoplay=utt.autoplay, loop=False))
    children.append(widgets.HTML(waveform_svg(utt.audio)))
    children.append(timings_widget(utt.timings))
    return widgets.VBox(children)


def utterance_bundle(utt: Any) -> dict[str, Any]:
    """The widget view in a kernel (its saved copy is a second output, `saved_bundle`);
    the static HTML elsewhere."""
    bundle: dict[str, Any] = {"text/plain": utt.summary()}
    if _in_kernel():
        if utt._widget is None:
            utt._widget = utterance_widget(utt)
        view = utt._widget._repr_mimebundle_()
        bundle.update({k: v for k, v in view.items() if k != "text/plain"})
    else:
        bundle["text/html"] = static_html(utt)
    return bundle
