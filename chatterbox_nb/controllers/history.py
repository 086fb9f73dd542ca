"""`%chatterbox history`: this kernel's utterances handed to the history table, Save wired to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..api import history
from ..display.history import History, default_name

__all__ = ["history_table", "save"]


def save(utt: Any, index: int, path: str = "") -> Path:
    """Write the WAV to `path`, or to `utterance_<index>.wav` in the current folder."""
    return utt.save(path.strip() or default_name(index))


def history_table() -> History:
    """A snapshot of the history now; later says do not change it."""
    return History(history(), save=save)
