"""Crash safety of every cache write, proved by killing the writer at each step.

A child process (forked from this one, so it costs no imports) writes a disk-cache
entry, a voice's conditionals or the voice registry, and is SIGKILLed at one
chosen filesystem step: before it, half-way through it (the file truncated as a
dying write leaves it), or just after it. The steps are found by a dry run that logs
them, so every step of the real write protocol is a kill point. After each kill, the
next reader must find the old state or the complete new one — never a partial
entry — and the next writer must leave no temporary garbage behind.

The checkpoints here are tiny (the write protocol does not care about sizes); the
real-size paths are covered in test_cache.py and test_fullsize.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import save_file

from chatterbox_nb.engine.store import diskcache, dummy, fsutil, sources
from chatterbox_nb.engine.specs import SPECS

SPEC = SPECS["english"]
INCOMPLETE = fsutil.INCOMPLETE
# (module or class, attribute, index of the path argument it writes, or None for a plain step)
STEPS: list[tuple[Any, str, int | None]] = [
    (__import__("safetensors.torch").torch, "save_file", 1),
    (shutil, "copyfile", 1),
    (Path, "write_text", 0),
    (Path, "write_bytes", 0),
    (os, "link", None),
    (os, "fsync", None),
    (os, "replace", None),
    (shutil, "rmtree", None),
]


def _tiny_checkpoint(folder: Path, reference: Path, *, as_dummy: bool) -> Path:
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for name in (SPEC.ve_file, SPEC.t3_file, SPEC.s3gen_file):
        save_file({"w.weight": torch.randn(32, 16, generator=gen), "w.bias": torch.randn(32, generator=gen)}, folder / name)
    for name in ("tokenizer.json", "conds.pt"):
        shutil.copyfile(reference / name, folder / name)
    if as_dummy:  # an immutable source that vouches for its files: the entry hard-links them
        files = {p.name: fsutil.sha256_file(p) for p in folder.iterdir()}
        (folder / dummy.MARKER).write_text(json.dumps({"format": dummy.FORMAT, "files": files}))
    return folder


@pytest.fixture(scope="module")
def reference(english_reduced) -> Path:
    return english_reduced.source.folder


def _run_child(work: Callable[[], None], kill_at: tuple[int, str] | None, log: Path) -> int:
    """Fork; in the child, hook the filesystem steps, run `work`, die at `kill_at`.
    Returns the child's wait status."""
    pid = os.fork()
    if pid:
        return _wait(pid)
    try:  # the child: never returns into pytest
        counter = itertools.count()
        names: list[str] = []

        def hooked(owner: Any, attr: str, path_arg: int | None) -> None:
            real = getattr(owner, attr)

            def step(*args: Any, **kwargs: Any) -> Any:
                i = next(counter)
                names.append(f"{attr}")
                if kill_at == (i, "before"):
                    os.kill(os.getpid(), signal.SIGKILL)
                result = real(*args, **kwargs)
                if kill_at == (i, "mid"):  # a write that died half-way
                    target = Path(args[path_arg])
                    os.truncate(target, target.stat().st_size // 2)
                    os.kill(os.getpid(), signal.SIGKILL)
                if kill_at == (i, "after"):
                    os.kill(os.getpid(), signal.SIGKILL)
                return result

            setattr(owner, attr, step)

        for owner, attr, path_arg in STEPS:
            hooked(owner, attr, path_arg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            work()
        log.write_text(json.dumps(names))
        os._exit(0)
    except BaseException:  # noqa: BLE001
        import traceback

        log.with_suffix(".err").write_text(traceback.format_exc())
        os._exit(3)


def _wait(pid: int, timeout_s: float = 120.0) -> int:
    """The child's wait status; a child that hangs (a forked torch thread pool can
    deadlock) is killed and fails the test instead of hanging the suite."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked writer hung for {timeout_s:.0f} s")


_UNIQUE = re.compile(r"[0-9a-f]{12}")


def disk_state(root: Path) -> tuple:
    """What a crash left on disk: every path (unique temporary names made alike), its
    kind, size and, for files, a hash of the bytes. Two kill points that leave the same
    state test the same thing."""
    state = []
    if root.exists():
        for path in sorted(root.rglob("*")):
            name = _UNIQUE.sub("#", str(path.relative_to(root)))
            if path.is_symlink() or not path.is_file():
                state.append((name, "dir" if path.is_dir() else "other"))
            else:
                state.append((name, path.stat().st_size, hashlib.sha1(path.read_bytes()).hexdigest()))
    return tuple(sorted(state))


def _kill_points(work: Callable[[], None], tmp: Path, reset: Callable[[], None]) -> list[tuple[int, str]]:
    """Every step of `work`, found by a dry run: before and after each, and half-way
    through each that writes a file."""
    reset()
    log = tmp / "steps.json"
    status = _run_child(work, None, log)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (log.with_suffix(".err").read_text() if log.with_suffix(".err").exists() else status)
    writers = {attr for _, attr, path_arg in STEPS if path_arg is not None}
    points = []
    for i, name in enumerate(json.loads(log.read_text())):
        points += [(i, "before"), (i, "after")] + ([(i, "mid")] if name in writers else [])
    return points


def _kill(work: Callable[[], None], point: tuple[int, str], tmp: Path) -> None:
    status = _run_child(work, point, tmp / "killed.json")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{point}: the child was not killed ({status})"


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.glob(f".*{INCOMPLETE}")) if parent.is_dir() else []


@pytest.mark.parametrize("scenario", ["fresh local", "fresh linked", "rebuild over stale"])
def test_killed_cache_write_never_leaves_a_partial_entry(tmp_path, reference, scenario):
    source_kind = "dummy" if scenario == "fresh linked" else "local"
    folder = _tiny_checkpoint(tmp_path / "ckpt", reference, as_dummy=source_kind == "dummy")
    source = sources.Source(source_kind, folder, f"tiny-{source_kind}")
    root = tmp_path / "cache"
    entry = diskcache.entry_dir(root, SPEC, source, "float32")
    stale_note = {"chatterbox_tts": "0.0.1", "torch": "0.1"}

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        if scenario == "rebuild over stale":  # a complete entry from another chatterbox-tts version
            diskcache.open_or_build(root, SPEC, source, "float32")
            manifest = json.loads((entry / diskcache.MANIFEST).read_text())
            manifest["versions"] = stale_note
            (entry / diskcache.MANIFEST).write_text(json.dumps(manifest))

    def work() -> None:
        diskcache.open_or_build(root, SPEC, source, "float32")

    points = _kill_points(work, tmp_path, reset)
    expected = {k: v.clone() for k, v in diskcache.checkpoint.read_weights(folder / SPEC.t3_file).items()}
    states = set()
    for point in points:
        reset()
        _kill(work, point, tmp_path)
        states.add(disk_state(root))
        # What a reader finds right after the crash: nothing, the old entry, or a whole new one.
        if entry.exists():
            why = diskcache.problem(entry, SPEC, source, "float32")
            if why is None:
                assert diskcache.verify(entry) == [], f"{point}: a complete-looking entry fails its checksums"
            elif scenario == "rebuild over stale":
                assert "was made with chatterbox-tts 0.0.1" in why, f"{point}: {why}"
            else:
                pytest.fail(f"{point}: the crash left a partial entry that is not detected as missing: {why}")
        # The next load: a complete, checked entry, and no garbage left behind.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", diskcache.CacheWarning)
            parts, how, built = diskcache.open_or_build(root, SPEC, source, "float32")
        assert how in ("disk-cache", source_kind) and built == entry, point
        assert diskcache.problem(entry, SPEC, source, "float32") is None and diskcache.verify(entry) == [], point
        assert all(torch.equal(parts.t3[k], v) for k, v in expected.items()), point
        assert _leftovers(entry.parent) == [], f"{point}: {_leftovers(entry.parent)}"
    assert len(states) >= 12, f"only {len(states)} distinct on-disk states"
    print(f"{scenario}: {len(points)} kill points, {len(states)} distinct on-disk states, every one recovered")


def test_killed_voice_writes_keep_registry_and_conditionals_whole(tmp_path, english_reduced, monkeypatch):
    """The registry (JSON) and a voice's conditionals (safetensors): each kill leaves the
    old file or the new one, both readable."""
    import chatterbox_nb as cnb
    from chatterbox_nb import config, voices_api
    from chatterbox_nb.engine.voices import conditionals as engine

    monkeypatch.setattr(config.settings(), "cache_dir", str(tmp_path / "cache"))
    monkeypatch.setattr(voices_api, "_prepare", lambda voice: None)  # no model work in the child
    from test_voices import _wav

    wav = _wav(tmp_path / "a.wav", seed=5)
    conds = english_reduced.tts.conds
    folder = engine.conds_dir(config.cache_dir(), english_reduced)
    registry = config.cache_dir() / "voices" / "voices.json"

    def reset() -> None:
        shutil.rmtree(config.cache_dir(), ignore_errors=True)
        cnb.voices.add("old", wav)

    def work() -> None:
        cnb.voices.add("new", wav)
        engine._save(conds, folder, "f" * 64, english_reduced)

    points = _kill_points(work, tmp_path, reset)
    states = set()
    for point in points:
        reset()
        _kill(work, point, tmp_path)
        states.add(disk_state(config.cache_dir()))
        names = set(json.loads(registry.read_text())["voices"])  # always valid JSON
        assert names in ({"old"}, {"old", "new"}), point
        saved = folder / f"{'f' * 64}.safetensors"
        if saved.exists():
            diskcache.load_conds(english_reduced.spec, saved)  # whole, digest checked
        cnb.voices.add("again", wav)
        engine._save(conds, folder, "e" * 64, english_reduced)
        assert set(cnb.voices) >= {"old", "again"}
        assert _leftovers(registry.parent) == [] and _leftovers(folder) == [], point
    assert len(states) >= 8, f"only {len(states)} distinct on-disk states"
    print(f"voice writes: {len(points)} kill points, {len(states)} distinct on-disk states, every one recovered")

