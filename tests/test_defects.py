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
from chatterbox_nb.engine.store import diskcache, dummy, sources
from chatterbox_nb.engine.models import loader
from chatterbox_nb.engine.specs import SPECS
from chatterbox_nb.errors import CheckpointError, SourceCorrupt

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def own_models():
    """An empty model registry for one test: the session's models (whatever dtype `auto`
    gave them) are set aside and put back afterwards, the test's own are dropped."""
    with STATE.lock:
        saved = dict(STATE.models)
        STATE.models.clear()
    yield
    for key in list(STATE.models):
        loader.drop(key)
    with STATE.lock:
        STATE.models.update(saved)


@pytest.fixture
def cache_root(tmp_path, own_models):
    """A private cache dir for one test, with its own models."""
    settings = config.settings()
    old = settings.cache_dir
    settings.cache_dir = str(tmp_path / "cache")
    yield tmp_path / "cache"
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


# -- section 4 -------------------------------------------------------------------------


@pytest.mark.parametrize("out, words", [
    ("speech", "ending in .wav"),
    ("x.mp3", "ending in .wav"),
    ("{tmp}/missing/x.wav", "does not exist"),
    ("/proc/x.wav", "cannot write in /proc"),  # a folder nobody can write into, root included
])
def test_say_out_is_checked_before_generating(shell, tmp_path, out, words, own_models):
    """`-o` without .wav, or into a folder that is missing or not writable: one line, before
    anything is generated; the history is unchanged (main generated, then failed in sf.write)."""
    from IPython.core.error import UsageError

    before = list(STATE.history)
    out = out.format(tmp=tmp_path)
    line = f"say hi -o {out} -m english --weights dummy:reduced --device cpu --dtype float32 --max-tokens 2 --seed 0"
    with pytest.raises(UsageError) as err:
        shell.run_line_magic("chatterbox", line)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert STATE.history == before


def _killed_build(root: Path, model: str = "english") -> Path:
    """What a package build killed mid-compile leaves: its scratch folder, with files."""
    from chatterbox_nb.engine.generation import compiled

    package = compiled.package_path(root, model, "weights", "cpu", "bfloat16", 1)
    scratch = package.parent / f".{package.name}.0123456789ab.incomplete"
    (scratch / "inductor").mkdir(parents=True)
    (scratch / "inductor" / "kernel.so").write_bytes(b"\0" * 4096)
    return scratch


def test_killed_package_builds_are_listed_and_cleared(cache_root):
    """A killed compile's scratch folder is shown by `cache info` and removed by `cache
    clear`, unless its build still runs (holds the package's lock); main never saw them."""
    from chatterbox_nb.engine.store import fsutil, packages

    dead = _killed_build(cache_root, "english")
    running = _killed_build(cache_root, "turbo")
    running_package = running.parent / running.name[1:].rsplit(".", 2)[0]
    with fsutil.lock_for(running_package):  # a build in progress in another kernel
        info = cnb.cache.info()
        assert list(info.leftovers) == [str(dead.relative_to(cache_root))] and info.leftovers[str(
            dead.relative_to(cache_root))] >= 4096
        assert "unfinished package build" in repr(info)
        removed = cnb.cache.clear()
    assert str(dead.relative_to(cache_root)) in removed and not dead.exists()
    assert running.exists()  # still being built: kept
    assert packages.leftovers(cache_root) == [running]  # its lock free now: the next clear takes it


def test_two_builds_of_one_package_compile_once(tmp_path, monkeypatch):
    """Two kernels building the same package: the second waits for the first's lock, then
    finds the package and compiles nothing (compiler stubbed, as in test_speed.py)."""
    import threading

    import torch

    from chatterbox_nb.engine.generation import compiled

    started, release = threading.Event(), threading.Event()
    calls = []

    def compile_stub(exported, package_path):
        calls.append(threading.current_thread().name)
        started.set()
        assert release.wait(60)
        Path(package_path).write_bytes(b"package")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_stub)
    path = compiled.package_path(tmp_path, "english", "weights", "cpu", "bfloat16", 1)
    errors = []

    def build():
        try:
            compiled.build_package("exported", path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = threading.Thread(target=build, name="first")
    second = threading.Thread(target=build, name="second")
    first.start()
    assert started.wait(60)
    second.start()
    second.join(0.5)  # the second would compile at once without the lock; it waits instead
    release.set()
    first.join(60)
    second.join(60)
    assert not first.is_alive() and not second.is_alive() and errors == []
    assert calls == ["first"] and path.read_bytes() == b"package"


@pytest.mark.parametrize("manifest", ["[1, 2]", "42", '"text"', '{"source": [1]}'])
def test_cache_info_lists_an_entry_whose_manifest_is_not_a_dict(cache_root, manifest):
    entry = cache_root / "models" / "english-float32-0123456789abcdef"
    entry.mkdir(parents=True)
    (entry / diskcache.MANIFEST).write_text(manifest)
    (info,) = cnb.cache.info().entries
    assert info["entry"] == entry.name and info["model"] in ("?", None) and info["source"] == "?"


def test_cache_clear_waits_for_a_load_that_builds_the_entry(cache_root, reduced_dummy, monkeypatch):
    """`cache clear` while a load has built its entry and is about to map it: clear takes
    the entry's lock, so the load finishes first (main's load hit FileNotFoundError)."""
    import threading
    import time

    from chatterbox_nb.engine.store import fsutil

    shutil.copytree(reduced_dummy, dummy.dummy_dir(cache_root, "english", "reduced"))
    built, go = threading.Event(), threading.Event()
    real_build, real_lock = diskcache._build, fsutil.lock_for
    clear_asked = threading.Event()

    def build(*args):
        real_build(*args)
        built.set()
        assert go.wait(120)

    def lock_for(final):
        if threading.current_thread().name == "clear":
            clear_asked.set()
        return real_lock(final)

    monkeypatch.setattr(diskcache, "_build", build)
    monkeypatch.setattr(fsutil, "lock_for", lock_for)
    results: dict = {}
    loading = threading.Thread(target=lambda: results.update(load=_load_dummy()), name="load")
    loading.start()
    assert built.wait(120)
    clearing = threading.Thread(target=lambda: results.update(clear=cnb.cache.clear("english")), name="clear")
    clearing.start()
    deadline = time.monotonic() + 60
    while not (clear_asked.is_set() or not clearing.is_alive()) and time.monotonic() < deadline:
        time.sleep(0.01)  # until clear has either finished (main) or asked for the entry's lock
    go.set()
    loading.join(120)
    clearing.join(120)
    assert results.get("load") == "dummy", results  # built, mapped and assembled: nothing missing
    assert any(r.startswith("models/") for r in results["clear"]) and diskcache.entries(cache_root) == []


def test_load_while_loading_refuses_what_the_running_load_does_not_cover(monkeypatch):
    """`load --reload`, `--warmup full` or `warmup --report` while the same model loads:
    one sentence (main returned the running task and dropped them); the same load again
    just returns the running task, which goes on and finishes."""
    import threading
    from types import SimpleNamespace

    from chatterbox_nb import loading
    from chatterbox_nb.errors import InvalidOption

    entered, release = threading.Event(), threading.Event()
    fake = SimpleNamespace(name="english", device="cpu", dtype="float32", nbytes=0, is_dummy=True, warmed="light",
                           warmup_metrics=None)  # warm already: the job has nothing to warm

    def load_now(choice, reload=False, progress=None):
        entered.set()
        assert release.wait(60)
        return fake, "memory", 0.0

    monkeypatch.setattr(loading, "load_now", load_now)
    kw = dict(weights="dummy:reduced", device="cpu", dtype="float32")
    task = cnb.load("english", warmup="light", **kw)
    try:
        assert entered.wait(60)
        assert cnb.load("english", warmup="light", **kw) is task  # nothing new asked: the same task
        assert cnb.load("english", warmup="off", **kw) is task
        for call, words in (
            (lambda: cnb.load("english", warmup="light", reload=True, **kw), "--reload"),
            (lambda: cnb.load("english", warmup="full", **kw), "warm-up full"),
            (lambda: cnb.warmup("english", level="light", report=True, **kw), "--report"),
        ):
            with pytest.raises(InvalidOption) as err:
                call()
            assert "loading already" in str(err.value) and words in str(err.value)
    finally:
        release.set()
    report = loading.finish(task)
    assert report.model == "english"


def test_history_keeps_text_and_saved_path_but_bounds_audio(tmp_path, monkeypatch, own_models):
    """Past `history_audio_mb` the oldest utterances release their audio (one sentence
    when it is asked for) and keep text, parameters and saved file; `status` says so.
    Main kept every utterance's audio for the kernel's life."""
    from chatterbox_nb.errors import ChatterboxError

    kw = dict(weights="dummy:reduced", device="cpu", dtype="float32", max_tokens=2)
    with STATE.lock:
        earlier = list(STATE.history)
        del STATE.history[:]
    monkeypatch.setattr(config.settings(), "history_audio_mb", 0.0, raising=False)  # only the newest keeps audio
    try:
        first = cnb.say("First one.", seed=1, out=str(tmp_path / "first.wav"), **kw)
        second = cnb.say("Second one.", seed=2, **kw)
        assert cnb.history == [first, second]
        assert len(second.audio) > 0
        with pytest.raises(ChatterboxError) as err:  # AudioReleased
            first.audio
        assert "First one." in str(err.value) and str(tmp_path / "first.wav") in str(err.value)
        assert "\n" not in str(err.value)
        assert first.text == "First one." and first.params["seed"] == 1 and first.saved == tmp_path / "first.wav"
        assert first.duration > 0 and (tmp_path / "first.wav").is_file()
        assert first.audio_bytes == 0 and second.audio_bytes > 0
        assert "1 with audio" in str(cnb.status().history) and "1 older with their audio released" in repr(cnb.status())
        from chatterbox_nb.display.history import text_table

        assert "First one." in text_table(cnb.history) and "audio released" in repr(first)
    finally:
        with STATE.lock:
            STATE.history[:] = earlier


def test_cache_clear_takes_the_compiled_verdicts_with_the_packages(tmp_path):
    """A verdict says a package did not pay on this machine, so no warm-up builds it again;
    `cache clear` of that model starts over: the verdict goes with the packages (a loser's
    verdict has no package beside it), the other model's stays."""
    from chatterbox_nb.engine.store import diskcache
    from chatterbox_nb.engine.store.layout import CacheLayout

    layout = CacheLayout(tmp_path)
    winner = layout.compiled_package("2.6.0", "english", "abc-cpu-bfloat16-t2-autocast")
    loser = layout.compiled_package("2.6.0", "english", "def-cpu-bfloat16-t1-autocast")
    other = layout.compiled_package("2.6.0", "turbo", "abc-cpu-bfloat16-t2-autocast")
    winner.parent.mkdir(parents=True)
    winner.write_bytes(b"package")
    for package in (winner, loser, other):
        layout.compiled_verdict(package).write_text('{"pays": false}')
    removed = diskcache.clear(tmp_path, "english")
    assert not winner.exists() and not layout.compiled_verdict(winner).exists()
    assert not layout.compiled_verdict(loser).exists()
    assert layout.compiled_verdict(other).exists()
    assert str(layout.compiled_verdict(loser).relative_to(tmp_path)) in removed
