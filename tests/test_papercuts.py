"""Issue #24's papercuts: nothing silently ignored, every mistake caught before the work,
nothing left behind. Each test fails on the code before its fix."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import chatterbox_nb as cnb
from chatterbox_nb.engine.store import dummy
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


# -- 3. keywords nobody knows -------------------------------------------------------------


def test_an_unknown_keyword_is_refused_with_the_closest_name(tmp_path):
    from chatterbox_nb.errors import UnknownKeyword

    before = len(cnb.history)
    with pytest.raises(UnknownKeyword, match="did you mean temperature?"):
        cnb.ui(temprature=0.5)
    with pytest.raises(UnknownKeyword, match="did you mean temperature?"):
        cnb.say("Hello.", temprature=0.5, weights=REDUCED, device="cpu")
    with pytest.raises(UnknownKeyword, match="did you mean temperature?"):
        cnb.batch(["Hello."], tmp_path / "out", temprature=0.5, weights=REDUCED)
    with pytest.raises(UnknownKeyword, match="did you mean weights?"):
        cnb.load("english", weigths=REDUCED)
    with pytest.raises(UnknownKeyword, match="temperature is a say option that warmup\\(\\) does not take"):
        cnb.warmup("english", temperature=0.5)
    with pytest.raises(TypeError):  # still what Python raises for an unknown keyword
        cnb.say("Hello.", nonsense=1)
    assert len(cnb.history) == before and not (tmp_path / "out").exists()


def test_a_misspelt_flag_names_the_closest_one(shell):
    from IPython.core.error import UsageError

    for line in ("say Hello --temprature 0.5", "ui --temprature=0.5", "load --weigths dummy"):
        with pytest.raises(UsageError, match=r"unrecognized arguments: .*; did you mean --(temperature|weights)\?"):
            shell.run_line_magic("chatterbox", line)


# -- 11. %chatterbox ui --out / --autoplay --------------------------------------------------


def test_ui_out_and_autoplay_reach_every_say(shell, tmp_path, english_reduced):
    from IPython.core.error import UsageError

    out = tmp_path / "panel.wav"
    panel = shell.run_line_magic(
        "chatterbox", f"ui --weights {REDUCED} --device cpu --max-tokens 6 --seed 3 --out {out} --autoplay"
    )
    panel.text.value = "Hello there."
    panel.start()
    utt = panel.wait(timeout=300)
    assert panel.error == "" and utt is not None
    assert utt.autoplay and out.is_file()
    saved, rate = sf.read(out, dtype="float32")
    assert rate == utt.sample_rate and np.array_equal(saved, utt.audio)
    with pytest.raises(UsageError, match="does not exist"):
        shell.run_line_magic("chatterbox", f"ui --out {tmp_path / 'nowhere' / 'x.wav'}")


# -- 5. no lock file beside the WAVs --------------------------------------------------------


def test_batch_leaves_only_wavs_and_the_manifest(shell, tmp_path, english_reduced):
    from filelock import FileLock
    from IPython.core.error import UsageError

    from chatterbox_nb import config
    from chatterbox_nb.engine.store.layout import CacheLayout

    src = tmp_path / "lines.txt"
    src.write_text("First line.\nSecond line.\n")
    out = tmp_path / "out"
    line = f"batch {src} --out {out} --weights {REDUCED} --device cpu --max-tokens 3 --seed 9"
    report = shell.run_line_magic("chatterbox", line)
    assert (report.made, report.failed) == (2, [])
    assert sorted(p.name for p in out.iterdir()) == ["00001.wav", "00002.wav", "manifest.jsonl"]
    # the folder is still one batch's at a time: its lock is in the cache dir, keyed by the folder
    with FileLock(str(CacheLayout(config.cache_dir()).batch_lock(out))):
        with pytest.raises(UsageError, match="Another batch is writing into"):
            shell.run_line_magic("chatterbox", line)


# -- 6. a disk that fills while a dummy checkpoint (or a compiled package) is written ------

_FULL = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


def _leftovers(folder: Path) -> list[str]:
    """What a failed build left under `folder`, lock files aside."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith(".lock"))


@pytest.mark.parametrize("raised", ["safetensors", "oserror"])
def test_a_full_disk_while_a_dummy_is_built_is_one_sentence(shell, tmp_path, monkeypatch, raised):
    import errno

    import safetensors.torch
    from IPython.core.error import UsageError
    from safetensors import SafetensorError

    from chatterbox_nb import config

    def full(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\0" * 1024)  # a partial file, as a real full disk leaves
        if raised == "safetensors":
            raise SafetensorError(_FULL)  # what safetensors raises, word for word, on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    monkeypatch.setattr(config.settings(), "cache_dir", str(tmp_path))
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("chatterbox", f"load -m turbo --weights {REDUCED} --device cpu --warmup off --wait")
    message = str(caught.value)
    assert message.startswith("Cannot write the dummy checkpoint in "), message
    assert "No space left on device" in message and "\n" not in message
    assert _leftovers(tmp_path) == ["dummy"]  # no partial checkpoint, no temporary folder


def test_a_full_disk_while_a_compiled_package_is_built_is_one_sentence(tmp_path, monkeypatch):
    import errno

    import torch._inductor

    from chatterbox_nb.engine.generation import compiled
    from chatterbox_nb.errors import CacheError

    def full(exported, package_path, **kwargs):
        Path(package_path).write_bytes(b"\0" * 1024)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", full)
    target = tmp_path / "compiled" / "estimator.pt2"
    with pytest.raises(CacheError, match=r"^Cannot write the compiled S3Gen package in .*No space left on device"):
        compiled.build_package(object(), target)
    assert _leftovers(tmp_path) == ["compiled"]


# -- 12. a say that names no weights speaks with the model in memory -----------------------


def test_a_say_without_weights_uses_the_model_in_memory(english_reduced, monkeypatch):
    from chatterbox_nb.display.timings import timings_html
    from chatterbox_nb.engine.models import loader
    from chatterbox_nb.engine.store import sources

    def no_hub(*args, **kwargs):
        raise AssertionError("the say tried the default weights (the hub)")

    monkeypatch.setitem(sources._RESOLVERS, "hub", no_hub)
    cnb.say("Hello.", weights=REDUCED, device="cpu", max_tokens=3, seed=1)  # the most recently used english now
    first = cnb.say("Hello.", max_tokens=3, seed=1)
    assert "(weights <code>dummy:reduced</code>)" in timings_html(first.timings)
    assert (first.timings["weights"], first.params["weights"], first.timings["model_source"]) == (
        REDUCED, REDUCED, "memory")
    stopping = cnb.load("english", weights="dummy:reduced-stopping", device="cpu", warmup="off", wait=True)
    try:
        assert cnb.say("Hello.", max_tokens=3, seed=1).timings["weights"] == "dummy:reduced-stopping"  # the newest
        cnb.say("Hello.", weights=REDUCED, device="cpu", max_tokens=3, seed=1)
        again = cnb.say("Hello.", max_tokens=3, seed=1)
        assert again.timings["weights"] == REDUCED  # the most recently used
        assert np.array_equal(again.audio, first.audio)
    finally:
        (m,) = [m for m in loader.loaded_models() if m.source.fingerprint != english_reduced.source.fingerprint
                and m.name == "english" and m.weights == "dummy:reduced-stopping"]
        loader.drop(m.key)
    assert stopping.model == "english"


# -- 15. load --wait shows its report once ---------------------------------------------------


def test_load_wait_shows_its_report_once(kernel):
    def shown(result):
        return [o for o in result["outputs"] if o["type"] in ("display_data", "execute_result", "stream")]

    kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    result = kernel.ok(kernel.execute(f"%chatterbox load --weights {REDUCED} --device cpu --warmup off --wait"))
    assert len(shown(result)) == 1, shown(result)  # the live line, which becomes the report
    (update,) = [o for o in result["outputs"] if o["type"] == "update_display_data"]
    assert update["data"]["text/plain"].startswith("english ready on cpu")
    assert update["transient"]["display_id"] == shown(result)[0]["transient"]["display_id"]
    # assigned, the report is the value; shown as a value, in another cell, it renders once
    kernel.ok(kernel.execute(f"r = %chatterbox load --weights {REDUCED} --device cpu --warmup off --wait"))
    assert kernel.value("r.model") == "english"
    again = kernel.ok(kernel.execute("r"))
    assert [o["data"]["text/plain"][:13] for o in shown(again)] == ["english ready"]
