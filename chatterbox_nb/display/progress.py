"""The live load widget: stage, steps, elapsed time; at the end the source and figures,
or the error in red. The background task pushes updates; a ticker refreshes the clock."""

from __future__ import annotations

import html
import threading
from typing import Any

from .player import _in_kernel

_TICK_S = 0.5


def _line(task: Any) -> str:
    if task.failed:
        return f'<span style="color:var(--jp-error-color1,#b00020)">&#10007; {html.escape(task.summary())}</span>'
    if task.done:
        return f"&#10003; {html.escape(task.summary())}"
    steps = f" ({task.steps[0]}/{task.steps[1]})" if task.steps else ""
    return f"&#8987; {html.escape(task.name)}: {html.escape(task.stage)}{steps} &middot; {task.elapsed:.1f} s"


def task_widget(task: Any) -> Any:
    import ipywidgets as widgets

    label = widgets.HTML(f'<div style="font:12px sans-serif">{_line(task)}</div>')
    bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0, layout=widgets.Layout(width="320px", height="10px"))
    bar.bar_style = "info"
    box = widgets.VBox([label, bar])

    def refresh(t: Any) -> None:
        label.value = f'<div style="font:12px sans-serif">{_line(t)}</div>'
        if t.done:
            bar.value, bar.bar_style = 1.0, ("danger" if t.failed else "success")
            bar.layout.display = "none" if not t.failed else None
        elif t.steps:
            bar.value = t.steps[0] / t.steps[1]

    def tick() -> None:
        while not task._done.wait(_TICK_S):
            refresh(task)

    task.subscribe(refresh)
    if not task.done:
        threading.Thread(target=tick, name="chatterbox_nb-progress", daemon=True).start()
    return box


def task_bundle(task: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = {"text/plain": task.summary()}
    if _in_kernel():
        view = task_widget(task)._repr_mimebundle_()
        bundle.update({k: v for k, v in view.items() if k != "text/plain"})
    return bundle
