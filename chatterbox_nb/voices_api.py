"""`cnb.voices` and `%chatterbox voice`: named reference voices that outlive the kernel.

What users call: `add`, `remove`, `list`, `voices["name"]`, and what a say asks of a voice
(`resolve`, `conditionals`). The names and their files are kept by the registry
(`voice_registry.py`); the conditionals by `engine/voices/conditionals.py`; the table by
`display/voices_table.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from . import config
from .display.voices_table import VoiceTable
from .engine.specs import BUILT_IN_VOICE
from .errors import AudioFileError, UnknownVoice
from .voice_registry import Registry, Resolved, Voice, check_name, check_weights, expand, file_record, listing, unknown

if TYPE_CHECKING:
    from .engine.models.loader import LoadedModel

__all__ = ["Resolved", "Voice", "Voices", "VoiceTable", "voices"]


class Voices:
    """The voices of this cache dir: `add`, `remove`, `list`, and `voices["name"]`."""

    @property
    def registry(self) -> Registry:
        return Registry(config.cache_dir())

    def names(self) -> list[str]:
        return sorted(self.registry.read())

    def __getitem__(self, name: str) -> Voice:
        known = self.registry.read()
        if name not in known:
            raise UnknownVoice(unknown(name, known))
        return known[name]

    def __contains__(self, name: object) -> bool:
        return name in self.registry.read()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.registry.read())

    def add(
        self, name: str, *paths: str | Path | Sequence[str | Path], weights: Sequence[float] | None = None
    ) -> Voice:
        """Register `name` for these files, given one by one or as one list or tuple (a
        folder stands for the audio files in it); several files make one blended voice,
        weighted by `weights`. Every file is read and checked first, so a bad one changes
        nothing. The conditionals are computed at once for the models in memory, lazily
        for the others."""
        from .engine.voices import audio

        check_name(name)
        files = expand(paths)
        shares = check_weights(weights, len(files))
        refs = [audio.read(p) for p in files]
        voice = Voice(
            name,
            [file_record(ref, w) for ref, w in zip(refs, shares)],
            added=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        with self.registry.editing() as known:
            known[name] = voice
        _prepare(voice)
        return voice

    def remove(self, name: str) -> Voice:
        """Forget the voice, and the cached conditionals no other voice uses."""
        from .engine.voices import conditionals as engine

        with self.registry.editing() as known:
            if name not in known:
                raise UnknownVoice(unknown(name, known))
            voice = known.pop(name)
            still_used = {f["sha256"] for v in known.values() for f in v.files}
        engine.forget({f["sha256"] for f in voice.files} - still_used, config.cache_dir())
        return voice

    def list(self) -> VoiceTable:
        return VoiceTable(listing(self.registry.read(), config.cache_dir()))

    def __repr__(self) -> str:
        return repr(self.list())

    def _repr_html_(self) -> str:
        return self.list()._repr_html_()

    # -- for say ---------------------------------------------------------------------------

    def resolve(self, voice: str | Path | None) -> Resolved | None:
        """A registered name, else an audio file (or folder) path (None: the built-in voice)."""
        return None if voice is None else self.registry.resolve(voice)

    def conditionals(self, loaded: LoadedModel, voice: Resolved | None) -> tuple[Any, str]:
        """The voice's conditionals for `loaded` (None: its built-in voice) and where they
        came from; a registered file that changed is described anew in the registry.
        The caller holds the model."""
        from .engine.voices import conditionals as engine

        if voice is None:
            return None, BUILT_IN_VOICE
        conds, source, computed = engine.conditionals(loaded, voice.files, config.cache_dir())
        self.registry.describe_again(voice, computed)
        return conds, source


def _prepare(voice: Voice) -> None:
    """Compute the conditionals for each model in memory, so the first say with the
    voice costs no conditioning. A model the voice does not suit (turbo and a short
    file) is skipped with a note: the voice remains usable with the others."""
    from .engine.models import loader
    from .engine.voices import conditionals as engine

    start = time.perf_counter()
    for loaded in loader.loaded_models():
        with loaded.use(user=True):
            if loaded.tts is None:
                continue
            try:
                engine.conditionals(loaded, voice.voice_files(), config.cache_dir())
            except AudioFileError as exc:
                print(f"Note: voice {voice.name!r} cannot be used with {loaded.name}: {exc}")
                continue
        voice.ready_for.append(f"{loaded.name}{' (dummy weights)' if loaded.is_dummy else ''}")
    voice.conditioning_s = time.perf_counter() - start


voices = Voices()
