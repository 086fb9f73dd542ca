"""A waveform picture under the player: the min/max envelope as an inline SVG.

Cheap on purpose (numpy `reduceat` over ~600 bins, no matplotlib, no image encoding):
it is drawn for every utterance, in the cell that made it, so it must cost
microseconds next to the seconds of synthesis.
"""

from __future__ import annotations

import numpy as np

POINTS = 600


def envelope(audio: np.ndarray, points: int = POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of `audio` in `points` equal bins (fewer for tiny audio)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n = min(points, len(audio))
    if n == 0:
        return np.zeros(1, np.float32), np.zeros(1, np.float32)
    starts = np.linspace(0, len(audio), n + 1).astype(np.int64)[:-1]
    return np.minimum.reduceat(audio, starts), np.maximum.reduceat(audio, starts)


def waveform_svg(audio: np.ndarray, *, width: int = 600, height: int = 48, colour: str = "#1f77b4") -> str:
    """One closed polyline: along the maxima left to right, back along the minima."""
    low, high = envelope(audio)
    peak = max(float(np.max(np.abs(high))), float(np.max(np.abs(low))), 1e-9)
    mid = height / 2
    scale = (height / 2 - 1) / peak
    x = np.linspace(0, width, len(high)) if len(high) > 1 else np.array([0.0, float(width)])
    if len(high) == 1:
        low, high = np.repeat(low, 2), np.repeat(high, 2)
    top = [f"{a:.1f},{mid - b * scale:.1f}" for a, b in zip(x, high)]
    bottom = [f"{a:.1f},{mid - b * scale:.1f}" for a, b in zip(x[::-1], low[::-1])]
    points = " ".join(top + bottom + top[:1])
    return (
        f'<svg class="cnb-waveform" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="display:block;max-width:100%" role="img" aria-label="waveform">'
        f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#888" stroke-opacity="0.4" stroke-width="1"/>'
        f'<polyline points="{points}" fill="{colour}" fill-opacity="0.35" stroke="{colour}" stroke-width="0.6"/></svg>'
    )
