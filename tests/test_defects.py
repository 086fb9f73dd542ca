"""Defects found in review (issue 21, sections 3 and 4): each test reproduces one report.

Loads here set float32, whose entries hard-link a dummy's weight files, so no test
depends on the dtype `auto` picks.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import pytest

import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb._state import STATE
from chatterbox_nb.engine import diskcache, dummy, loader, sources
from chatterbox_nb.engine.specs import SPECS
from chatterbox_nb.errors import CheckpointError, SourceCorrupt

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def cache_root(tmp_path):
    """A private cache dir and an empty model registry for one test: the session's
    models (whatever dtype `auto` gave them) are set aside and put back afterwards."""
    settings = config.settings()
    old = settings.cache_dir
    settings.cache_dir = str(tmp_path / "cache")
    with STATE.lock:
        saved = dict(STATE.models)
        STATE.models.clear()
    yield tmp_path / "cache"
    for key in list(STATE.models):
        loader.drop(key)
    with STATE.lock:
        STATE.models.update(saved)
    settings.cache_dir = old


@pytest.fixture(scope="session")
def reduced_dummy(cache_dir) -> Path:
    """The session's reduced English dummy checkpoint (built once, never damaged here)."""
    return dummy.ensure_dummy(cache_dir, "english", "reduced")


def _drop_all() -> None:
    for m in loader.loaded_models():
        loader.drop(m.key)


def _same_size_garbage(path: Path) -> None:
    """What a bad disk leaves: the size kept, the bytes not (a JSON reader fails at column 2)."""
    size = path.stat().st_size
    path.write_bytes((b"{1" + b"\x00" * size)[:size])


def _load_dummy() -> str:
    return cnb.load("english", weights="dummy:reduced", device="cpu", dtype="float32", warmup="off", wait=True).source


# -- section 3: damage to an entry and to the dummy it was built from --------------------


def test_same_size_damage_to_entry_and_dummy_is_repaired(cache_root, reduced_dummy):
    """Garbage of the same size in both tokenizer.json files and flipped bytes in the
    entry's conditionals: the dummy's recorded checksums catch it, the dummy is made
    again, and this load and every later one succeed (main failed every load with
    `Exception: key must be a string at line 1 column 2`)."""
    shutil.copytree(reduced_dummy, dummy.dummy_dir(cache_root, "english", "reduced"))
    assert _load_dummy() == "dummy"
    _drop_all()
    (entry,) = diskcache.entries(cache_root)
    source = dummy.dummy_dir(cache_root, "english", "reduced")
    _same_size_garbage(entry / "tokenizer.json")
    _same_size_garbage(source / "tokenizer.json")
    with open(entry / "conds.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\xde\xad\xbe\xef")
    with pytest.warns(diskcache.CacheWarning) as record:
        assert _load_dummy() == "dummy"  # the entry rebuilt from a dummy made again
    assert any("tokenizer.json" in str(w.message) for w in record)
    assert dummy.recorded_sha256(source, "tokenizer.json") == hashlib.sha256(
        (source / "tokenizer.json").read_bytes()).hexdigest()
    u = cnb.say("Repaired.", weights="dummy:reduced", device="cpu", dtype="float32", max_tokens=2, seed=0)
    assert len(u.audio) > 0
    _drop_all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", diskcache.CacheWarning)
        assert _load_dummy() == "disk-cache"  # and the next load finds a good entry


def test_a_damaged_user_tokenizer_is_named_not_parsed_raw(cache_root, reduced_dummy, tmp_path):
    """A user's folder has no checksums: the tokenizer reader's parse error becomes one
    sentence naming the file and what to do, and no entry is written from it."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for f in reduced_dummy.iterdir():
        if f.name != dummy.MARKER:
            shutil.copyfile(f, folder / f.name)
    _same_size_garbage(folder / "tokenizer.json")
    with pytest.raises(CheckpointError) as err:
        cnb.load("english", weights=str(folder), device="cpu", dtype="float32", warmup="off", wait=True)
    message = str(err.value)
    assert str(folder / "tokenizer.json") in message and "replace it with a good copy" in message
    assert "\n" not in message
    assert diskcache.entries(cache_root) == []


def test_a_damaged_hub_blob_is_named_with_the_command_that_fixes_it(tmp_path):
    """Hub blobs are named by their etag (git's sha1 for small files): a blob that no
    longer matches its name is named, with `hf download`, before anything parses it."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    content = b'{"version": "1.0"}'
    sha1 = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    (blobs / sha1).write_bytes(content)
    (snapshot / "tokenizer.json").symlink_to(blobs / sha1)
    source = sources.Source("hub", snapshot, "hub:test@abc")
    assert source.file_problem(snapshot / "tokenizer.json") is None
    _same_size_garbage(blobs / sha1)
    why = source.file_problem(snapshot / "tokenizer.json")
    assert why is not None
    with pytest.raises(SourceCorrupt) as err:
        diskcache._check_source(SPECS["english"], source, skip=set())
    assert str(blobs / sha1) in str(err.value) and "hf download ResembleAI/chatterbox" in str(err.value)
