"""The voice registry: `voices/voices.json` in the cache dir, and the paths it is given.

For each voice it records its files (absolute path, sha256, size, duration, sample rate,
channels, blend weight). It is re-read before every change and rewritten atomically under
a file lock, so two kernels sharing a cache dir never undo each other's voices. The
conditionals themselves live in `engine/voices/conditionals.py`, keyed by content, not by name; the
`cnb.voices` facade users call is `voices_api.py`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .engine.store.layout import CacheLayout
from .errors import AudioFileError, CacheError, InvalidOption, UnknownVoice

__all__ = ["Registry", "Resolved", "Voice", "check_name", "expand", "check_weights", "file_record", "listing"]

FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Voice:
    """A registered voice: one file, or several blended with their weights."""

    name: str
    files: list[dict[str, Any]]
    added: str = ""
    #: set by `add`: the models whose conditionals were computed at once, and how long that took
    ready_for: list[str] = field(default_factory=list)
    conditioning_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return sum(f["duration_s"] for f in self.files)

    def voice_files(self) -> list[Any]:
        from .engine.voices.conditionals import VoiceFile

        return [VoiceFile(Path(f["path"]), f["sha256"], f["weight"]) for f in self.files]

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "added": self.added}

    def __repr__(self) -> str:
        names = ", ".join(Path(f["path"]).name + _weight_note(self, f) for f in self.files)
        line = f"voice {self.name!r}: {len(self.files)} file(s), {self.duration_s:.1f} s ({names})"
        if self.ready_for:
            line += f"; conditionals ready for {', '.join(self.ready_for)} in {self.conditioning_s:.2f} s"
        return line


def _weight_note(voice: Voice, f: dict[str, Any]) -> str:
    weights = {x["weight"] for x in voice.files}
    return f" x{f['weight']:g}" if len(weights) > 1 else ""


@dataclass(frozen=True)
class Resolved:
    """What `say --voice` resolved to: a registered name or a plain file, and its files."""

    label: str
    files: list[Any]
    name: str | None = None


class Registry:
    """The registry file of one cache dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = CacheLayout(root).registry

    def read(self, *, locked: bool = False) -> dict[str, Voice]:
        """The registered voices. A damaged registry (not JSON, or JSON of the wrong
        shape) is warned about once and set aside as `voices.json.damaged`."""
        try:
            return _parse(json.loads(self.path.read_text("utf-8")))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CacheError(f"Cannot read the voice registry {self.path} ({exc.strerror or exc}).") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._set_aside(exc, locked)
            return {}

    def _set_aside(self, exc: Exception, locked: bool) -> None:
        from .engine.store import fsutil

        def move() -> bool:
            try:  # another kernel may have mended it meanwhile
                _parse(json.loads(self.path.read_text("utf-8")))
                return False
            except (ValueError, KeyError, TypeError, AttributeError):
                self.path.replace(self.path.with_name(self.path.name + ".damaged"))
                return True
            except OSError:
                return False

        with contextlib.ExitStack() as stack:
            if not locked:
                stack.enter_context(fsutil.lock_for(self.path))
            moved = move()
        if moved:
            warnings.warn(
                f"The voice registry {self.path} is damaged ({type(exc).__name__}: {exc}); it is set aside as "
                f"{self.path.name}.damaged, and voices must be added again.",
                stacklevel=4,
            )

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, Voice]]:
        """Read, let the caller change, write back: all under the registry's file lock."""
        from .engine.store import fsutil

        try:
            with fsutil.lock_for(self.path):
                voices = self.read(locked=True)
                yield voices
                self._write(voices)
        except OSError as exc:
            raise CacheError(
                f"Cannot write the voice registry in {self.path.parent} ({exc.strerror or exc}): free some space, or "
                "set %config Chatterbox.cache_dir to a folder you can write."
            ) from None

    def _write(self, voices: dict[str, Voice]) -> None:
        from .engine.store.fsutil import write_atomic

        data = {"format": FORMAT, "voices": {name: v.to_json() for name, v in sorted(voices.items())}}
        write_atomic(self.path, json.dumps(data, indent=1).encode("utf-8"))

    def resolve(self, voice: str | Path) -> Resolved:
        """A registered name, else an audio file (or folder) path; each file hashed now
        (cheap: remembered per path, size and mtime), so a changed file gets new conditionals."""
        from .engine.voices import audio
        from .engine.voices.conditionals import VoiceFile

        if not isinstance(voice, (str, Path)) or not str(voice).strip():
            raise InvalidOption("--voice needs a voice name or the path of an audio file.")
        known = self.read()
        if str(voice) in known:
            files = []
            for vf in known[str(voice)].voice_files():
                if vf.path.is_file():
                    vf = VoiceFile(vf.path, audio.content_hash(vf.path), vf.weight)
                files.append(vf)
            return Resolved(str(voice), files, name=str(voice))
        path = Path(voice).expanduser()
        if path.exists():
            paths = audio.audio_files_in(path) if path.is_dir() else [audio.existing_file(path)]
            return Resolved(str(path), [VoiceFile(p, audio.content_hash(p)) for p in paths])
        if path.suffix.lower() in audio.AUDIO_SUFFIXES or "/" in str(voice) or "\\" in str(voice):
            raise AudioFileError(f"{path} does not exist; give the path of a WAV, FLAC or MP3 file.")
        raise UnknownVoice(unknown(str(voice), known))

    def describe_again(self, resolved: Resolved, computed: list[Any]) -> None:
        """After a say computed new conditionals for a changed file of a registered voice,
        the registry describes the file as it is now."""
        if resolved.name is None or not computed:
            return
        by_path = {str(ref.path): ref for ref in computed}
        with self.editing() as known:
            voice = known.get(resolved.name)
            if voice is None:
                return
            voice.files = [
                file_record(by_path[f["path"]], f["weight"]) if f["path"] in by_path else f for f in voice.files
            ]


_FILE_FIELDS = {"path": str, "sha256": str, "weight": (int, float), "duration_s": (int, float)}


def _parse(data: Any) -> dict[str, Voice]:
    """The registry's voices; raises ValueError for anything but the shape we write."""
    voices = {}
    for name, v in data["voices"].items():
        files = v["files"]
        if not isinstance(name, str) or not isinstance(files, list) or not files:
            raise ValueError(f"voice {name!r} has no files")
        for f in files:
            for key, kind in _FILE_FIELDS.items():
                if not isinstance(f[key], kind):
                    raise ValueError(f"voice {name!r}: {key} is not a {getattr(kind, '__name__', 'number')}")
        voices[name] = Voice(name, files, str(v.get("added", "")))
    return voices


def unknown(name: str, known: dict[str, Voice]) -> str:
    """The one sentence for a voice that is neither registered nor a file."""
    if not known:
        return (
            f"Unknown voice {name!r}: no voices are registered; add one with %chatterbox voice add NAME FILE, "
            "or give the path of an audio file."
        )
    return (
        f"Unknown voice {name!r}: known voices are {', '.join(sorted(known))}; "
        "or give the path of an audio file."
    )


def check_name(name: Any) -> str:
    """A voice name that is safe as a JSON key, a file name and a `--voice` argument."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidOption(
            f"Voice name {name!r} is not usable: use letters, digits, '_', '-' or '.', up to 64 characters."
        )
    return name


def expand(paths: Sequence[Any]) -> list[Path]:
    """The audio files the user named: files as given, folders as the audio files in them."""
    from .engine.voices import audio

    files: list[Path] = []
    for p in _flat(paths):
        path = Path(p).expanduser()
        if path.is_dir():
            files.extend(audio.audio_files_in(path))
        else:
            files.append(audio.existing_file(path))
    return [f.resolve() for f in files]


def _flat(paths: Sequence[Any]) -> list[str | Path]:
    """The paths as a Python user writes them: `add("duo", "a.wav", "b.wav")`, or one list
    or tuple of them (`add("duo", ["a.wav", "b.wav"])`)."""
    flat: list[str | Path] = []
    for p in paths:
        if isinstance(p, (list, tuple)):
            flat.extend(_flat(p))
        elif isinstance(p, (str, os.PathLike)) and str(os.fspath(p)).strip():
            flat.append(p)
        else:
            raise InvalidOption(
                f"voice add takes audio file paths or folders, not {p!r}: "
                'add("duo", "a.wav", "b.wav"), add("duo", ["a.wav", "b.wav"]) or add("duo", "folder/").'
            )
    if not flat:
        raise InvalidOption("voice add needs at least one audio file or folder.")
    return flat


def check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """One positive, finite blend weight per file (all 1 when none are given)."""
    if weights is None:
        return [1.0] * n
    try:
        shares = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise InvalidOption(f"Voice weights must be numbers, got {weights!r}.") from None
    if len(shares) != n:
        raise InvalidOption(f"{len(shares)} weight(s) for {n} file(s): give one weight per file.")
    if not all(math.isfinite(w) and w > 0 for w in shares):
        raise InvalidOption(f"Voice weights must be positive numbers, got {', '.join(map(str, weights))}.")
    return shares


def file_record(ref: Any, weight: float) -> dict[str, Any]:
    """What the registry keeps of one decoded reference file."""
    stat = ref.path.stat()
    return {
        "path": str(ref.path.resolve()),
        "sha256": ref.sha256,
        "size": stat.st_size,
        "duration_s": round(ref.duration_s, 3),
        "sample_rate": ref.sample_rate,
        "channels": ref.channels,
        "weight": weight,
    }


def listing(known: dict[str, Voice], root: Path) -> list[dict[str, Any]]:
    """`voice list` as plain rows: name, files, missing files, duration, the models with
    cached conditionals and their disk use (what `display/voices_table.py` shows)."""
    from .engine.voices.conditionals import cached_models

    rows = []
    folders = cached_models(root)
    for name, voice in sorted(known.items()):
        models, size = [], 0
        for folder, label in folders.items():
            paths = [folder / f"{f['sha256']}.safetensors" for f in voice.files]
            if all(p.is_file() for p in paths):
                models.append(label)
                size += sum(p.stat().st_size for p in paths)
        rows.append(
            {
                "name": name,
                "files": [Path(f["path"]).name + _weight_note(voice, f) for f in voice.files],
                "missing": [f["path"] for f in voice.files if not Path(f["path"]).is_file()],
                "duration_s": voice.duration_s,
                "models": models,
                "bytes": size,
            }
        )
    return rows
