"""The transcript of a long say in its saved copy: each sentence with its start time,
a link that seeks the copy's `<audio>` there.

The saved copy plays where no kernel runs (a reopened notebook, nbconvert's HTML), so
the seek is a one-line inline handler on each link, nothing a widget or a kernel serves.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from .style import MUTED, TEXT, duration_label

#: on a sentence link: play the enclosing utterance's <audio> from the link's start time
_SEEK = ("var a=this.closest('.chatterbox-utterance').querySelector('audio');"
         "if(a){a.currentTime=+this.dataset.start;a.play();}return false;")


def transcript_html(chunks: Sequence[Any]) -> str:
    """The sentences of a say of several chunks, each a seek link; "" for one chunk."""
    if len(chunks) < 2:
        return ""
    rows = "".join(
        f'<li style="margin:1px 0"><a class="cnb-seek" href="#" data-start="{c.start:.3f}" onclick="{_SEEK}" '
        f'style="{TEXT};text-decoration:none"><span class="cnb-seek-time" style="{MUTED}">'
        f"{duration_label(c.start)}</span> {html.escape(c.text)}</a></li>"
        for c in chunks
    )
    return f'<ol class="cnb-transcript" style="font:12px sans-serif;list-style:none;padding:0;margin:2px 0">{rows}</ol>'
