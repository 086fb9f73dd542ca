"""Typed exceptions: each carries one sentence that tells the user what to do.

The magic turns every `ChatterboxError` into an IPython `UsageError` (one line, no
traceback); API users can catch the specific class.
"""

from __future__ import annotations


class ChatterboxError(Exception):
    """Base class for mistakes and conditions a user can act on."""


class InvalidOption(ChatterboxError, ValueError):
    """An option has a value outside what chatterbox accepts."""


class DeviceUnavailable(ChatterboxError):
    """The requested --device does not exist on this machine."""


class HubUnavailable(ChatterboxError):
    """The Hugging Face hub cannot be reached and the files are not cached."""


class CheckpointError(ChatterboxError):
    """A local checkpoint folder is missing files or has the wrong shapes."""

    def __init__(self, message: str, *, path: object = None, why: str = "") -> None:
        super().__init__(message)
        #: the file that could not be read, and what was wrong with it, when one file is to blame
        self.path = path
        self.why = why


class SourceCorrupt(CheckpointError):
    """A source file does not match the checksum its source vouches for."""


class AudioFileError(ChatterboxError):
    """A reference audio file is missing, unreadable, silent or too short."""


class CacheError(ChatterboxError):
    """The disk cache cannot be used (for example the disk is full)."""


class ModelNotLoaded(ChatterboxError):
    """An operation needs a model that is not in memory."""


class UnknownVoice(ChatterboxError, LookupError):
    """`--voice` names no registered voice and no audio file."""


class Stopped(ChatterboxError):
    """A say was stopped before any of its audio was made."""


class AudioReleased(ChatterboxError):
    """An old utterance's audio was released to bound the history (its text and saved file stay)."""


class UnknownKeyword(InvalidOption, TypeError):
    """A keyword the function does not take (a typo, usually): refused, never ignored.
    Also a `TypeError`, as Python's own answer to an unknown keyword is."""
