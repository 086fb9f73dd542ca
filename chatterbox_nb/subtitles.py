"""An utterance's sentence timings (`Utterance.chunks`) and their subtitle files.

Long text is spoken chunk by chunk (a sentence, or a few short ones); each chunk keeps
where its speech lies in the audio, so a transcript can follow and seek the player and
a video editor or a `<track>` can show the text in time (SubRip `.srt`, WebVTT `.vtt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .errors import InvalidOption

__all__ = ["Chunk", "FORMATS", "check_format", "subtitles"]


@dataclass(frozen=True)
class Chunk:
    """One chunk of the text and where its speech lies in the audio (seconds; the pause before it left out)."""

    text: str
    start: float
    end: float


#: the subtitle formats `Utterance.save(subtitles=...)` writes, by file suffix
FORMATS = ("srt", "vtt")


def check_format(fmt: str | None) -> str | None:
    """`fmt` as given, if it is one of FORMATS (or None); else one clear error."""
    if fmt is None or (isinstance(fmt, str) and fmt.lower() in FORMATS):
        return fmt if fmt is None else fmt.lower()
    raise InvalidOption(f"subtitles={fmt!r}: use 'srt' (SubRip) or 'vtt' (WebVTT), or None for no subtitle file.")


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    # a blank line would end the cue, and "-->" is reserved in a WebVTT cue
    return " ".join(text.split()).replace("-->", "->")


def subtitles(chunks: Sequence[Chunk], fmt: str) -> str:
    """The chunks as a SubRip (`srt`) or WebVTT (`vtt`) file's text."""
    fmt = check_format(fmt)
    sep = "," if fmt == "srt" else "."
    cues = []
    for i, c in enumerate(chunks, 1):
        number = f"{i}\n" if fmt == "srt" else ""
        cues.append(f"{number}{_stamp(c.start, sep)} --> {_stamp(c.end, sep)}\n{_cue_text(c.text)}\n")
    head = "WEBVTT\n\n" if fmt == "vtt" else ""
    return head + "\n".join(cues)
