"""The look every view shares: JupyterLab's CSS variables (with light fallbacks, so the
text reads in the dark theme and outside JupyterLab) and how a length is written."""

from __future__ import annotations

TEXT = "color:var(--jp-content-font-color1,#222)"
MUTED = "color:var(--jp-content-font-color2,#555)"
ERROR = "color:var(--jp-error-color1,#b00020)"


def duration_label(seconds: float) -> str:
    """m:ss.s, shown before the audio is played."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"
