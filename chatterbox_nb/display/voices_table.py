"""`%chatterbox voice list` as text and as an HTML table, from the registry's plain rows."""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

EMPTY = "No voices yet: %chatterbox voice add NAME FILE [FILE ...]"


def voices_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line a voice: its files, duration, the models it is cached for, disk use."""
    if not rows:
        return EMPTY
    lines = [f"{len(rows)} voice(s):"]
    for r in rows:
        lines.append(
            f"  {r['name']}: {', '.join(r['files'])}; {r['duration_s']:.1f} s; cached for "
            f"{', '.join(r['models']) or 'no model yet'}; {r['bytes'] / 1024:.0f} KiB on disk"
            + (f"; missing: {', '.join(r['missing'])}" if r["missing"] else "")
        )
    return "\n".join(lines)


def voices_html(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return f"<pre>{html.escape(EMPTY)}</pre>"
    body = "".join(
        f"<tr><td><b>{html.escape(r['name'])}</b></td><td>{html.escape(', '.join(r['files']))}"
        + (f" <span style='color:#b00'>(missing: {html.escape(', '.join(r['missing']))})</span>" if r["missing"] else "")
        + f"</td><td>{r['duration_s']:.1f} s</td><td>{html.escape(', '.join(r['models']) or '—')}</td>"
        f"<td>{r['bytes'] / 1024:.0f} KiB</td></tr>"
        for r in rows
    )
    return (
        '<table style="font:12px sans-serif"><tr><th>voice</th><th>files</th><th>duration</th>'
        f"<th>cached for</th><th>on disk</th></tr>{body}</table>"
    )


class VoiceTable:
    """What `voice list` returns: the rows (name, files, missing, duration_s, models,
    bytes), shown as text in a terminal and as a table in a notebook."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return voices_text(self.rows)

    def _repr_html_(self) -> str:
        return voices_html(self.rows)
