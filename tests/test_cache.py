"""The disk weight cache: hits, rebuilds of bad entries, races, a full disk, info/verify/clear.

Models here are float32, whose entries hard-link an immutable source's files (other
dtypes convert T3, which is a copy)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb._state import STATE
from chatterbox_nb.engine.generation import compiled
from chatterbox_nb.engine.store import diskcache, dummy
from chatterbox_nb.engine.models import loader
from conftest import fresh_loads_of

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="session")
def local_source(english_reduced, tmp_path_factory) -> Path:
    """The reduced English weights as a user's local folder (no dummy marker): the
    cache keeps its own copies, so corrupting an entry never touches the source."""
    folder = tmp_path_factory.mktemp("local-ckpt")
    for f in english_reduced.source.folder.iterdir():
        if f.name != dummy.MARKER:
            shutil.copyfile(f, folder / f.name)
    return folder


@pytest.fixture
def cache_root(tmp_path):
    """A private cache dir for one test; models loaded from it are evicted afterwards."""
    settings = config.settings()
    old = settings.cache_dir
    settings.cache_dir = str(tmp_path / "cache")
    before = set(STATE.models)
    yield tmp_path / "cache"
    for key in set(STATE.models) - before:
        loader.drop(key)
    settings.cache_dir = old


def _load(src: Path) -> str:
    return cnb.load("english", weights=str(src), device="cpu", dtype="float32", warmup="off", wait=True).source


def _evict() -> None:
    for m in loader.loaded_models():
        if m.source.kind == "local":
            loader.drop(m.key)


def _entry(root: Path) -> Path:
    (entry,) = diskcache.entries(root)
    return entry


def test_memory_then_disk_cache(cache_root, local_source):
    assert _load(local_source) == "local"  # built the entry, then mapped it
    assert _load(local_source) == "memory"
    _evict()
    assert _load(local_source) == "disk-cache"
    entry = _entry(cache_root)
    manifest = diskcache.read_manifest(entry)
    assert manifest["format"] == diskcache.FORMAT
    assert manifest["versions"] == diskcache.versions()
    assert manifest["source"]["kind"] == "local"
    assert set(manifest["files"]) >= {"ve.safetensors", "t3.safetensors", "s3gen.safetensors", "conds.safetensors"}
    for name, meta in manifest["files"].items():
        assert (entry / name).stat().st_size == meta["size"]
        assert meta["how"] != "linked"  # a user's folder may change in place: keep our own copy
    assert diskcache.trusted(entry)  # its builder hashed every file: later loads need not


def _truncate(entry: Path) -> None:
    with open(entry / "t3.safetensors", "r+b") as f:
        f.truncate(f.seek(0, 2) - 1000)


def _old_format(entry: Path) -> None:
    _edit_manifest(entry, format=0)


def _other_version(entry: Path) -> None:
    _edit_manifest(entry, versions={"chatterbox_tts": "0.1.2", "torch": "2.6.0"})


def _missing_file(entry: Path) -> None:
    (entry / "s3gen.safetensors").unlink()


def _half_written(entry: Path) -> None:
    (entry / diskcache.MANIFEST).unlink()


def _lying_manifest(entry: Path) -> None:
    manifest = diskcache.read_manifest(entry)
    manifest["files"]["ve.safetensors"]["size"] += 4
    (entry / diskcache.MANIFEST).write_text(json.dumps(manifest))


def _bad_header(entry: Path) -> None:
    with open(entry / "ve.safetensors", "r+b") as f:
        f.seek(10)
        f.write(b"\x00\xff")


def _edit_manifest(entry: Path, **changes) -> None:
    manifest = diskcache.read_manifest(entry)
    manifest.update(changes)
    (entry / diskcache.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage, words",
    [
        (_truncate, "truncated"),
        (_old_format, "cache format 0"),
        (_other_version, "chatterbox-tts 0.1.2"),
        (_missing_file, "missing s3gen.safetensors"),
        (_half_written, "no readable manifest"),
        (_lying_manifest, "ve.safetensors"),
        (_bad_header, "damaged ve.safetensors"),
    ],
)
def test_bad_entry_warns_once_rebuilds_and_speaks(cache_root, local_source, damage, words):
    _load(local_source)
    _evict()
    damage(_entry(cache_root))
    with pytest.warns(diskcache.CacheWarning) as record:
        assert _load(local_source) == "local"  # rebuilt from the source
    messages = [str(w.message) for w in record if issubclass(w.category, diskcache.CacheWarning)]
    assert len(messages) == 1 and words in messages[0]
    entry = _entry(cache_root)
    assert diskcache.verify(entry) == []
    if damage is _truncate:  # one rebuilt model speaks; S3Gen costs seconds, the others need not repeat it
        u = cnb.say("Still here.", weights=str(local_source), device="cpu", dtype="float32", max_tokens=2, seed=0)
        assert u.timings["model_source"] == "memory" and len(u.audio) > 0


def test_flipped_bytes_inside_a_tensor_are_caught_before_any_say(cache_root, local_source):
    """Same-size damage deep in a weight file changes the file's identity (its mtime),
    so the load hashes the entry in full before mapping it: no say is served bad bytes."""
    _load(local_source)
    _evict()
    entry = _entry(cache_root)
    with open(entry / "t3.safetensors", "r+b") as f:  # deep inside the tensor data
        f.seek(f.seek(0, 2) // 2)
        f.write(b"\x13\x37\x13\x37")
    with pytest.warns(diskcache.CacheWarning) as record:
        assert _load(local_source) == "local"  # rebuilt before anything used it
    messages = [str(w.message) for w in record if issubclass(w.category, diskcache.CacheWarning)]
    assert len(messages) == 1 and "t3.safetensors fails its sha256 check" in messages[0]
    assert diskcache.trusted(_entry(cache_root)) and diskcache.verify(_entry(cache_root)) == []
    u = cnb.say("Rebuilt.", weights=str(local_source), device="cpu", dtype="float32", max_tokens=2, seed=0)
    assert u.timings["model_source"] == "memory" and len(u.audio) > 0


def test_a_checked_entry_is_trusted_and_a_moved_one_checked_once(cache_root, local_source, monkeypatch):
    _load(local_source)
    _evict()
    hashed = []
    real = diskcache.verify
    monkeypatch.setattr(diskcache, "verify", lambda folder: hashed.append(folder.name) or real(folder))
    assert _load(local_source) == "disk-cache" and hashed == []  # stamped by its builder
    _evict()
    entry = _entry(cache_root)
    copy = entry.with_name(entry.name + "-copy")
    shutil.copytree(entry, copy)  # new inodes: as after copying a cache dir to another disk
    shutil.rmtree(entry)
    copy.rename(entry)
    assert _load(local_source) == "disk-cache" and hashed == [entry.name]
    _evict()
    assert _load(local_source) == "disk-cache" and hashed == [entry.name]  # stamped again: trusted


def test_cache_verify_and_clear(cache_root, local_source, shell, capsys):
    _load(local_source)
    entry = _entry(cache_root)
    with open(entry / "conds.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\xde\xad\xbe\xef")
    with pytest.warns(diskcache.CacheWarning):
        shell.run_cell("%chatterbox cache verify")
    assert "1 bad" in capsys.readouterr().out
    assert diskcache.entries(cache_root) == []
    _load(local_source)
    info = cnb.cache.info()
    weights = sum(p.stat().st_size for p in Path(local_source).glob("*.safetensors"))
    assert len(info.entries) == 1 and info.entries[0]["own_bytes"] > 0.9 * weights  # its own copy of them
    # compiled packages (what a full warm-up writes) are the cache's too
    packages = {m: compiled.package_path(cache_root, m, "weights", "cpu", "bfloat16", 1) for m in ("english", "turbo")}
    for path in packages.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"package")
    assert "compiled package compiled/torch-" in repr(cnb.cache.info())
    shell.run_cell("%chatterbox cache clear -m english")
    out = capsys.readouterr().out
    assert "models/english-float32-" in out and "estimator-english-" in out and "turbo" not in out
    assert diskcache.entries(cache_root) == []
    assert not packages["english"].exists() and packages["turbo"].exists()
    assert list(cnb.cache.info().packages) == [str(packages["turbo"].relative_to(cache_root))]
    packages["turbo"].unlink()


def test_disk_full_loads_from_source_and_leaves_nothing(cache_root, local_source, monkeypatch):
    real_save = diskcache.save_conds

    def full_disk(conds, path):
        real_save(conds, path)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(diskcache, "save_conds", full_disk)
    with pytest.warns(diskcache.CacheWarning, match="No space left on device"):
        assert _load(local_source) == "local"
    u = cnb.say("Still speaks.", weights=str(local_source), device="cpu", dtype="float32", max_tokens=2, seed=0)
    assert len(u.audio) > 0
    models = diskcache.models_dir(cache_root)
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_immutable_sources_are_linked_not_copied(cache_root, english_reduced):
    """A dummy (like a hub blob) is immutable and checksummed: the entry links it."""
    root_dummy = dummy.dummy_dir(cache_root, "english", "reduced")
    shutil.copytree(english_reduced.source.folder, root_dummy)
    with fresh_loads_of(english_reduced):
        assert cnb.load("english", weights="dummy:reduced", device="cpu", dtype="float32", warmup="off", wait=True).source == "dummy"
    entry = _entry(cache_root)
    for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors"):
        ours = entry / diskcache.WEIGHTS[name.split(".")[0].replace("_cfg", "")]
        assert ours.stat().st_ino == (root_dummy / name).stat().st_ino
    info = cnb.cache.info()
    weights = sum(p.stat().st_size for p in root_dummy.glob("*.safetensors"))
    assert info.entries[0]["shared_bytes"] >= weights and info.entries[0]["own_bytes"] < 10**7


RACE = """
import json, os, sys, time
os.environ["CHATTERBOX_NB_CACHE_DIR"] = sys.argv[1]
import chatterbox_nb as cnb
from chatterbox_nb.engine.models import loader  # past the heavy imports: torch, chatterbox
barrier = sys.argv[3]
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < 2:  # both past their imports, then go at once
    time.sleep(0.01)
r = cnb.load("english", weights=sys.argv[2], device="cpu", dtype="float32", warmup="off", wait=True)
u = cnb.say("Race.", weights=sys.argv[2], device="cpu", dtype="float32", max_tokens=2, seed=0, cfm_steps=2)
print(json.dumps({"source": r.source, "audio": float(abs(u.audio).sum())}))
"""


def test_two_processes_build_once(tmp_path, local_source):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(cache), str(local_source), str(barrier)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(r["source"] for r in results) == ["disk-cache", "local"]
    assert results[0]["audio"] == results[1]["audio"]
    assert len(diskcache.entries(cache)) == 1
    assert not list((cache / "models").glob(".*incomplete"))
