"""What the caches load cannot run code, what they create follows the user's umask,
and a symbolic link planted in the cache is never followed out of it."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch

import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb._state import STATE
from chatterbox_nb.engine.store import diskcache, sources
from chatterbox_nb.engine.voices import conditionals as engine
from chatterbox_nb.errors import CacheError
from test_faults import SPEC, _tiny_checkpoint
from test_voices import _wav


@pytest.fixture
def tiny_source(tmp_path, english_reduced) -> sources.Source:
    folder = _tiny_checkpoint(tmp_path / "ckpt", english_reduced.source.folder, as_dummy=False)
    return sources.Source("local", folder, "tiny-local")


def _no_unpickling(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("something in the cache was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_cache_and_voices_load_without_unpickling(tmp_path, english_reduced, monkeypatch):
    root = config.cache_dir()
    entry = english_reduced.entry  # the entry the session's model was mapped from
    wav = _wav(tmp_path / "v.wav", seed=201)
    files = cnb.voices.resolve(str(wav)).files
    engine.conditionals(english_reduced, files, root)  # computed and written
    STATE.voice_conds.clear()

    _no_unpickling(monkeypatch)
    parts = diskcache.read_entry(SPEC, entry)
    assert parts.t3 and parts.conds.t3.speaker_emb is not None
    _, source, _ = engine.conditionals(english_reduced, files, root)
    assert source == "disk-cache"
    cnb.voices.names()  # the registry is JSON


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_created_files_follow_the_umask(tmp_path, tiny_source, english_reduced, umask, monkeypatch):
    monkeypatch.setattr(config.settings(), "cache_dir", str(tmp_path / "cache"))
    old = os.umask(umask)
    try:
        diskcache.open_or_build(config.cache_dir(), SPEC, tiny_source, "float32")
        cnb.voices.add("umask", _wav(tmp_path / "u.wav", seed=202))
    finally:
        os.umask(old)
    made = [p for p in (tmp_path / "cache").rglob("*")]
    assert len(made) > 10
    for path in made:
        mode = path.stat().st_mode & 0o777
        assert mode & umask == 0, f"{path} has mode {oct(mode)} under umask {oct(umask)}"


def test_symlinked_entry_is_not_followed(tmp_path, tiny_source):
    root = tmp_path / "cache"
    diskcache.open_or_build(root, SPEC, tiny_source, "float32")
    entry = diskcache.entry_dir(root, SPEC, tiny_source, "float32")
    outside = tmp_path / "outside"
    shutil.move(entry, outside)  # a complete entry, but outside the cache
    entry.symlink_to(outside, target_is_directory=True)
    with pytest.warns(diskcache.CacheWarning, match="symbolic link"):
        _, how, built = diskcache.open_or_build(root, SPEC, tiny_source, "float32")
    assert how == "local" and not built.is_symlink() and built.is_dir()
    assert (outside / diskcache.MANIFEST).is_file()  # what the link pointed at is untouched


def test_symlinked_file_in_an_entry_is_not_followed(tmp_path, tiny_source):
    root = tmp_path / "cache"
    diskcache.open_or_build(root, SPEC, tiny_source, "float32")
    entry = diskcache.entry_dir(root, SPEC, tiny_source, "float32")
    secret = tmp_path / "secret.safetensors"
    shutil.copyfile(entry / "ve.safetensors", secret)  # same bytes, so only the link gives it away
    (entry / "ve.safetensors").unlink()
    (entry / "ve.safetensors").symlink_to(secret)
    assert "symbolic link" in diskcache.problem(entry, SPEC, tiny_source, "float32")
    with pytest.warns(diskcache.CacheWarning):
        diskcache.open_or_build(root, SPEC, tiny_source, "float32")
    assert not (entry / "ve.safetensors").is_symlink() and secret.is_file()


def test_symlinked_voice_conditionals_are_recomputed(tmp_path, english_reduced):
    root = config.cache_dir()
    wav = _wav(tmp_path / "s.wav", seed=203)
    files = cnb.voices.resolve(str(wav)).files
    engine.conditionals(english_reduced, files, root)
    cached = engine.conds_dir(root, english_reduced) / f"{files[0].sha256}.safetensors"
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.move(cached, elsewhere)
    cached.symlink_to(elsewhere)
    STATE.voice_conds.clear()
    with pytest.warns(diskcache.CacheWarning, match="symbolic link"):
        _, source, _ = engine.conditionals(english_reduced, files, root)
    assert source == "computed" and not cached.is_symlink() and elsewhere.is_file()


def test_a_cache_dir_that_is_a_file_gets_one_sentence(tmp_path, english_reduced, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setattr(config.settings(), "cache_dir", str(not_a_dir))
    for call in (lambda: cnb.voices.add("x", _wav(tmp_path / "x.wav")), cnb.voices.list, lambda: cnb.cache.info()):
        with pytest.raises(CacheError, match="is not a folder"):
            call()
    monkeypatch.setattr(config.settings(), "cache_dir", str(not_a_dir / "below"))
    with pytest.raises(CacheError, match="Cannot write the voice registry"):
        cnb.voices.add("x", _wav(tmp_path / "y.wav"))
    assert not_a_dir.read_text() == "x"
    models = dict(STATE.models)
    with pytest.raises(CacheError, match="Cannot write the dummy weights"):
        cnb.say("Hi.", weights="dummy:reduced", device="cpu", max_tokens=1)
    assert STATE.models == models
