"""Damage that must never brick a load, and runs that must stay reproducible whatever
else the kernel does. Each test here failed on the code before it (issue 14).

The caches live in a private cache dir holding a copy of the session's reduced English
dummy, so an entry hard-links its weights (as with hub blobs) and costs no copy.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError

import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb.engine.store import diskcache, dummy, fsutil
from chatterbox_nb.engine.models import loader
from chatterbox_nb.errors import SourceCorrupt

from conftest import fresh_loads_of
from kernel_utils import Kernel

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
# float32: its entries hard-link the dummy's files, as with hub blobs (other dtypes convert T3)
REDUCED = dict(weights="dummy:reduced", device="cpu", dtype="float32")


@pytest.fixture
def private_cache(tmp_path, english_reduced, monkeypatch):
    """A cache dir with its own copy of the reduced dummy checkpoint. Every loaded copy of
    that model is set aside meanwhile; models loaded here are dropped after."""
    root = tmp_path / "cache"
    shutil.copytree(english_reduced.source.folder, dummy.dummy_dir(root, "english", "reduced"))
    monkeypatch.setattr(config.settings(), "cache_dir", str(root))
    with fresh_loads_of(english_reduced):
        yield root


def _load() -> str:
    return cnb.load("english", **REDUCED, warmup="off", wait=True).source


def _entry(root: Path) -> Path:
    (entry,) = diskcache.entries(root)
    return entry


def _drop_all(root: Path) -> None:
    for m in loader.loaded_models():
        if m.entry is not None and root in m.entry.parents:
            loader.drop(m.key)


def _cache_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, diskcache.CacheWarning)]


def _speaks() -> None:
    u = cnb.say("Still speaking.", **REDUCED, max_tokens=2, seed=0)
    assert len(u.audio) > 0


# -- failures 1 and 2: damage that used to fail every later load ------------------------


@pytest.mark.parametrize("damage", ["truncated", "same-size"])
def test_damaged_linked_weights_rebuild_the_dummy_too(private_cache, damage):
    """The entry's t3 is a hard link to the dummy's: damaging it damages the source as
    well, whether it is truncated or four bytes deep inside a tensor change (same size: the
    size check passes, only the sha256 finds it). One warning; the dummy checkpoint is made
    again, then the entry; it speaks."""
    assert _load() == "dummy"
    entry = _entry(private_cache)
    source_t3 = dummy.dummy_dir(private_cache, "english", "reduced") / "t3_cfg.safetensors"
    assert (entry / "t3.safetensors").stat().st_ino == source_t3.stat().st_ino
    size = source_t3.stat().st_size
    _drop_all(private_cache)
    with open(entry / "t3.safetensors", "r+b") as f:
        if damage == "truncated":
            f.truncate(size // 4)
        else:
            f.seek(size // 2)
            good = f.read(4)
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in good))
    assert (source_t3.stat().st_size == size) is (damage == "same-size")  # the source is damaged too
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert _load() == "dummy"
    messages = _cache_warnings(record)
    words = "truncated" if damage == "truncated" else "t3.safetensors fails its sha256 check"
    assert len(messages) == 1 and words in messages[0], messages
    assert diskcache.verify(_entry(private_cache)) == []
    with open(source_t3, "rb") as f:  # the dummy checkpoint was made again, not only the entry
        f.seek(size // 2)
        assert source_t3.stat().st_size == size and (damage == "truncated" or f.read(4) == good)
    _speaks()


@pytest.mark.parametrize("damage", ["conds", "tokenizer"])
def test_same_size_damage_to_a_small_file_is_rebuilt(private_cache, damage):
    assert _load() == "dummy"
    entry = _entry(private_cache)
    _drop_all(private_cache)
    if damage == "conds":
        with open(entry / diskcache.CONDS, "r+b") as f:
            f.seek(-40, 2)
            f.write(bytes(32))
    else:  # a tokenizer that no longer parses, same size
        path = entry / "tokenizer.json"
        path.write_bytes(b"{" * path.stat().st_size)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert _load() == "dummy"
    messages = _cache_warnings(record)
    name = diskcache.CONDS if damage == "conds" else "tokenizer.json"
    assert len(messages) == 1 and name in messages[0], messages
    if damage == "conds":  # the rebuilt voice speaks (S3Gen costs seconds: once is enough)
        _speaks()
    _drop_all(private_cache)
    assert _load() == "disk-cache"  # the rebuilt entry stays good


def test_damaged_hub_blob_names_the_file_to_delete(private_cache, english_reduced, monkeypatch, tmp_path, shell):
    """A hub blob cannot be made again here: one sentence naming the blob to delete."""
    import huggingface_hub
    from huggingface_hub import constants

    hub = tmp_path / "hf"
    repo = hub / "models--ResembleAI--chatterbox"
    snap = repo / "snapshots" / ("0" * 40)
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in english_reduced.source.folder.iterdir():
        if f.name != dummy.MARKER:
            blob = repo / "blobs" / fsutil.sha256_file(f)
            shutil.copyfile(f, blob)
            (snap / f.name).symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert huggingface_hub.constants.HF_HUB_CACHE == str(hub)
    hub_load = dict(model="english", weights="hub", device="cpu", dtype="float32", warmup="off", wait=True)
    assert cnb.load(**hub_load).source == "hub"
    _drop_all(private_cache)
    blob = (snap / "t3_cfg.safetensors").resolve()
    with open(_entry(private_cache) / "t3.safetensors", "r+b") as f:  # the same inode as the blob
        f.truncate(1000)
    with pytest.warns(diskcache.CacheWarning, match="truncated"):
        with pytest.raises(SourceCorrupt) as info:
            cnb.load(**hub_load)
    message = str(info.value)
    assert str(blob) in message and "hf download ResembleAI/chatterbox" in message
    assert len(message.splitlines()) == 1
    with pytest.warns(diskcache.CacheWarning):
        with pytest.raises(UsageError, match="delete"):
            shell.run_line_magic("chatterbox", "load -m english --weights hub --device cpu --dtype float32 --warmup off --wait")


# -- defect 3: records of the wrong shape -----------------------------------------------


def _manifest_files_not_dicts(manifest: dict) -> None:
    manifest["files"]["ve.safetensors"] = ["not", "a", "record"]


def _manifest_without_sha256(manifest: dict) -> None:
    del manifest["files"]["t3.safetensors"]["sha256"]


def _manifest_files_a_list(manifest: dict) -> None:
    manifest["files"] = list(manifest["files"])


@pytest.mark.parametrize("edit", [_manifest_files_not_dicts, _manifest_without_sha256, _manifest_files_a_list])
def test_manifest_of_the_wrong_shape_is_rebuilt(private_cache, edit):
    assert _load() == "dummy"
    entry = _entry(private_cache)
    _drop_all(private_cache)
    manifest = diskcache.read_manifest(entry)
    edit(manifest)
    (entry / diskcache.MANIFEST).write_text(json.dumps(manifest))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert _load() == "dummy"
    assert len(_cache_warnings(record)) == 1, _cache_warnings(record)
    assert diskcache.verify(_entry(private_cache)) == [] and diskcache.trusted(_entry(private_cache))


@pytest.mark.parametrize(
    "registry",
    [
        '{"format": 1, "voices": ["a", "b"]}',
        '{"format": 1, "voices": {"a": {"files": [{"path": "/x.wav"}]}}}',
        '{"format": 1, "voices": {"a": {"files": []}}}',
        "[1, 2, 3]",
    ],
)
def test_voice_registry_of_the_wrong_shape_is_set_aside(private_cache, registry, shell, capsys, tmp_path):
    from test_voices import _wav

    path = private_cache / "voices" / "voices.json"
    path.parent.mkdir(parents=True)
    path.write_text(registry)
    with pytest.warns(UserWarning, match="damaged") as record:
        assert cnb.voices.names() == []
        shell.run_line_magic("chatterbox", "voice list")
    assert len([w for w in record if "damaged" in str(w.message)]) == 1  # once, then it is aside
    assert (path.parent / "voices.json.damaged").read_text() == registry
    cnb.voices.add("fresh", _wav(tmp_path / "fresh.wav", seed=3))
    assert cnb.voices.names() == ["fresh"]


# -- defect 4: races with other processes and other environments ------------------------


def test_entry_retired_between_check_and_read_is_rebuilt(private_cache, monkeypatch):
    """Another process may retire the entry after our checks and before our read."""
    assert _load() == "dummy"
    _drop_all(private_cache)
    real, calls = diskcache.read_entry, []

    def retired_first(spec, folder):
        calls.append(folder)
        if len(calls) == 1:
            fsutil.retire(folder)
        return real(spec, folder)

    monkeypatch.setattr(diskcache, "read_entry", retired_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diskcache.CacheWarning)
        assert _load() == "dummy"  # rebuilt, not a FileNotFoundError
    assert len(calls) == 2 and diskcache.verify(_entry(private_cache)) == []


def test_full_check_holds_the_entry_lock(private_cache, monkeypatch):
    """`cache verify` hashes under the entry's lock: a rebuild by another process cannot
    slip in between and be mistaken for damage."""
    assert _load() == "dummy"
    entry = _entry(private_cache)
    hashing, release = threading.Event(), threading.Event()
    real = fsutil.sha256_file

    def slow(path):
        hashing.set()
        release.wait(10)
        return real(path)

    monkeypatch.setattr(fsutil, "sha256_file", slow)
    worker = threading.Thread(target=lambda: cnb.cache.verify())
    worker.start()
    assert hashing.wait(10)
    other = fsutil.lock_for(entry)
    from filelock import Timeout

    with pytest.raises(Timeout):
        other.acquire(timeout=0.3)
    release.set()
    worker.join(30)
    other.acquire(timeout=5)
    other.release()
    assert diskcache.entries(private_cache) == [entry]


def test_two_environments_keep_their_own_entries(private_cache, monkeypatch):
    """The entry key holds the chatterbox-tts and torch versions: two virtual envs that
    share a cache dir no longer rebuild each other's entries forever."""
    assert _load() == "dummy"
    ours = diskcache.versions()
    _drop_all(private_cache)
    monkeypatch.setattr(diskcache, "versions", lambda: {**ours, "torch": "9.9.9"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", diskcache.CacheWarning)  # nothing of ours is "stale"
        assert _load() == "dummy"
        _drop_all(private_cache)
        monkeypatch.setattr(diskcache, "versions", lambda: ours)
        assert _load() == "disk-cache"
    assert len(diskcache.entries(private_cache)) == 2


# -- defect 5: a seeded say does not depend on what else runs ---------------------------


@pytest.mark.parametrize("seeded_dtype, busy_dtype", [("float32", "bfloat16"), ("bfloat16", "float32")])
def test_seeded_say_is_the_same_while_another_model_generates(english_reduced, seeded_dtype, busy_dtype):
    """The reduced english model in `seeded_dtype` says a seeded sentence alone, then again
    while its twin in `busy_dtype` (another key, its own lock) generates: both ways round,
    whichever dtype the session's model has."""
    seeded = dict(weights="dummy:reduced", device="cpu", dtype=seeded_dtype, max_tokens=8, seed=11)
    other = dict(weights="dummy:reduced", device="cpu", dtype=busy_dtype, max_tokens=30)
    cnb.load("english", weights="dummy:reduced", device="cpu", dtype=busy_dtype, warmup="off", wait=True)
    alone = cnb.say("The same every time.", **seeded).audio
    models = {m.dtype: m for m in loader.loaded_models() if m.key in
              {english_reduced.key._replace(dtype=d) for d in (seeded_dtype, busy_dtype)}}
    busy_model, failed = models[busy_dtype], []

    def busy_say() -> None:
        try:
            cnb.say("Another model, busy.", **other)
        except BaseException as exc:  # noqa: BLE001 - checked below, never lost in the thread
            failed.append(exc)

    try:
        busy = threading.Thread(target=busy_say)
        busy.start()
        deadline = time.monotonic() + 120  # the lock's event; the limit only ends a hung test
        while not busy_model.lock.locked() and busy.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert busy_model.lock.locked(), f"the other model never started generating: {failed}"
        beside = cnb.say("The same every time.", **seeded).audio
        busy.join(120)
        assert not busy.is_alive() and failed == []
    finally:
        for m in models.values():
            if m is not english_reduced:
                loader.drop(m.key)
    assert np.array_equal(alone, beside)


# -- defect 6: an unload is not undone by a say that queued before it ------------------


def test_say_queued_behind_unload_does_not_load_the_model_again():
    kernel = Kernel()
    try:
        ok = Kernel.ok
        ok(kernel.execute("%load_ext chatterbox_nb"))
        ok(kernel.execute("import chatterbox_nb as cnb, threading, time; from chatterbox_nb import progressive"))
        ok(kernel.execute("cnb.load('english', weights='dummy:reduced', device='cpu', warmup='off', wait=True)"))
        code = """
errors, stopped = {}, {}
def run(name, n):
    try:
        u = cnb.say("Queued for the model.", weights="dummy:reduced", device="cpu", max_tokens=n, seed=1)
        errors[name], stopped[name] = None, u.timings["stopped"]
    except Exception as exc:
        errors[name] = type(exc).__name__
first = threading.Thread(target=run, args=("first", 200)); first.start()
while not progressive.running(): time.sleep(0.01)
second = threading.Thread(target=run, args=("second", 4)); second.start()
while len(progressive.running()) < 2: time.sleep(0.01)
dropped = cnb.unload("english")
first.join(); second.join()
"""
        ok(kernel.execute(code))
        assert len(kernel.value("dropped")) == 1
        assert kernel.value("errors['first']") is None  # the say under way was cut, not failed
        assert kernel.value("stopped['first']") is True
        assert kernel.value("errors['second']") == "ModelNotLoaded"
        assert kernel.value("[m['model'] for m in cnb.status().models]") == []
    finally:
        kernel.shutdown()
