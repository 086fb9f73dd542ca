"""Issue #24's papercuts: nothing silently ignored, every mistake caught before the work,
nothing left behind. Each test fails on the code before its fix."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import chatterbox_nb as cnb
from chatterbox_nb.engine import dummy
from chatterbox_nb.errors import InvalidOption

REDUCED = "dummy:reduced"


def _wav(path: Path, seconds: float = 3.0, seed: int = 1) -> Path:
    sf.write(path, dummy.synthetic_voice(seconds, 24000, seed=seed), 24000)
    return path


def _name() -> str:
    return f"v{uuid.uuid4().hex[:8]}"


# -- 1. voices from a list ----------------------------------------------------------------


def test_voice_add_takes_a_list_a_tuple_or_a_folder(tmp_path):
    a, b = _wav(tmp_path / "a.wav", seed=1), _wav(tmp_path / "b.wav", seed=2)
    for given in ([a, b], (str(a), str(b))):
        voice = cnb.voices.add(_name(), given)
        assert [Path(f["path"]).name for f in voice.files] == ["a.wav", "b.wav"]
    folder = cnb.voices.add(_name(), tmp_path)
    assert sorted(Path(f["path"]).name for f in folder.files) == ["a.wav", "b.wav"]
    name = _name()
    with pytest.raises(InvalidOption, match=r'add\("duo", \["a.wav", "b.wav"\]\)'):
        cnb.voices.add(name, [a, 3])
    with pytest.raises(InvalidOption, match="at least one"):
        cnb.voices.add(name, [])
    assert name not in cnb.voices
