"""The timing widget: where the time of one utterance went, as stacked bars."""

from __future__ import annotations

import html
from typing import Any

from ..engine.specs import BUILT_IN_VOICE

# (timings key, label, colour)
STAGES = (
    ("load_s", "load", "#8c8c8c"),
    ("wait_s", "wait", "#c7c7c7"),
    ("conditioning_s", "conditioning", "#9467bd"),
    ("t3_s", "T3 tokens", "#1f77b4"),
    ("s3gen_s", "S3Gen", "#ff7f0e"),
    ("watermark_s", "watermark", "#2ca02c"),
    ("other_s", "other", "#dddddd"),
)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def timings_html(timings: dict[str, Any]) -> str:
    total = max(float(timings.get("total_s") or 0.0), 1e-9)
    bars, legend = [], []
    for key, label, colour in STAGES:
        seconds = float(timings.get(key) or 0.0)
        if seconds <= 0:
            continue
        width = max(100.0 * seconds / total, 0.5)
        title = html.escape(f"{label}: {_fmt(seconds)}")
        bars.append(f'<div title="{title}" style="width:{width:.2f}%;background:{colour};height:100%"></div>')
        legend.append(
            f'<span style="margin-right:10px;white-space:nowrap"><span style="display:inline-block;width:9px;'
            f'height:9px;background:{colour};margin-right:3px"></span>{html.escape(label)} {_fmt(seconds)}</span>'
        )
    tokens = timings.get("speech_tokens", 0)
    t3_s = float(timings.get("t3_s") or 0.0)
    rate = f" ({tokens / t3_s:.1f} tok/s)" if t3_s > 0 and tokens else ""
    chunks = ""
    if timings.get("stopped") or timings.get("first_audio_s", total) < total:
        done, pieces = timings.get("chunks_done", 0), timings.get("pieces", 0)
        chunks = f" · first audio after {_fmt(float(timings['first_audio_s']))} · {done} chunk{'s' if done != 1 else ''}"
        chunks += f" in {pieces} pieces" if pieces > done else ""
        chunks += " (stopped)" if timings.get("stopped") else ""
    summary = (
        f"<b>total {_fmt(total)}</b>{chunks} · audio {float(timings.get('audio_s') or 0):.2f} s · "
        f"RTF {float(timings.get('rtf') or 0):.2f} · {tokens} speech tokens{rate} · "
        f"model from <code>{html.escape(str(timings.get('model_source', '?')))}</code>"
    )
    if timings.get("weights"):  # which weights spoke (a say naming none uses the model in memory)
        summary += f" (weights <code>{html.escape(str(timings['weights']))}</code>)"
    if timings.get("dtype"):
        summary += f" in <code>{html.escape(str(timings['dtype']))}</code>"
    if timings.get("s3gen_path"):  # which S3Gen path ran, and what compiling measured here
        summary += f" · {html.escape(str(timings['s3gen_path']))}"
    if timings.get("voice_source") not in (None, BUILT_IN_VOICE):
        summary += f" · voice from <code>{html.escape(str(timings['voice_source']))}</code>"
    hint = ""
    if timings.get("s3gen_hint"):  # said once: what one full warm-up buys on this machine
        hint = f'<div style="margin-top:2px">tip: {html.escape(str(timings["s3gen_hint"]))}</div>'
    return (
        '<div class="chatterbox-timings" style="font:12px sans-serif;max-width:640px;'
        'color:var(--jp-content-font-color1,#222)">'
        f'<div style="display:flex;height:12px;border-radius:3px;overflow:hidden;margin:4px 0">{"".join(bars)}</div>'
        f'<div style="color:var(--jp-content-font-color2,#444)">{"".join(legend)}</div><div style="margin-top:2px">{summary}</div>{hint}</div>'
    )


def timings_widget(timings: dict[str, Any]) -> Any:
    import ipywidgets as widgets

    return widgets.HTML(timings_html(timings))
