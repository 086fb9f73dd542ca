"""The inline player: an audio widget, the timing widget, and a static HTML fallback.

The bundle carries both a widget view (live in JupyterLab and Notebook 7) and a
plain `<audio>` element, which is what a saved notebook or nbconvert shows when no
widget state is stored. Outside a kernel (terminal IPython) only the text summary
is meaningful.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from .timings import timings_html, timings_widget
from .waveform import waveform_svg

DUMMY_BANNER = "Noise from dummy weights: random values in the real model, not speech."


def _in_kernel() -> bool:
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def _banner_html() -> str:
    return (
        '<div style="font:12px sans-serif;color:#8a4b00;background:#fff4e0;padding:2px 6px;'
        f'border-radius:3px;display:inline-block">&#9888; {html.escape(DUMMY_BANNER)}</div>'
    )


def static_html(utt: Any) -> str:
    src = "data:audio/wav;base64," + base64.b64encode(utt.wav_bytes()).decode("ascii")
    autoplay = " autoplay" if utt.autoplay else ""
    banner = _banner_html() if utt.dummy else ""
    return (
        f'<div class="chatterbox-utterance">{banner}<div style="font:12px sans-serif;margin:2px 0">'
        f"&#8220;{html.escape(utt.text)}&#8221;</div><audio controls{autoplay} src=\"{src}\"></audio>"
        f"{waveform_svg(utt.audio)}{timings_html(utt.timings)}</div>"
    )


def utterance_widget(utt: Any) -> Any:
    import ipywidgets as widgets

    children = []
    if utt.dummy:
        children.append(widgets.HTML(_banner_html()))
    children.append(widgets.HTML(f'<div style="font:12px sans-serif">&#8220;{html.escape(utt.text)}&#8221;</div>'))
    children.append(widgets.Audio(value=utt.wav_bytes(), format="wav", autoplay=utt.autoplay, loop=False))
    children.append(widgets.HTML(waveform_svg(utt.audio)))
    children.append(timings_widget(utt.timings))
    return widgets.VBox(children)


def utterance_bundle(utt: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = {"text/plain": utt.summary(), "text/html": static_html(utt)}
    if _in_kernel():
        if utt._widget is None:
            utt._widget = utterance_widget(utt)
        view = utt._widget._repr_mimebundle_()
        bundle.update({k: v for k, v in view.items() if k != "text/plain"})
    return bundle
