"""Reference voices: the registry, the conditionals cache (memory and disk), blending,
and one clear sentence for each bad file — on the reduced English dummy."""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from IPython.core.error import UsageError

import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb._state import STATE
from chatterbox_nb.engine.store import diskcache, dummy
from chatterbox_nb.engine.generation import synth
from chatterbox_nb.engine.voices import conditionals as engine
from chatterbox_nb.errors import AudioFileError, InvalidOption, UnknownVoice

SAY = dict(weights="dummy:reduced", device="cpu", max_tokens=6, seed=7)


def _wav(path: Path, seconds: float = 3.0, sr: int = 44100, seed: int = 1, channels: int = 1) -> Path:
    """A synthetic voice; a faint random tail makes its bytes new in every run, so a kept
    test cache (CHATTERBOX_NB_TEST_CACHE) never answers for it."""
    wav = dummy.synthetic_voice(seconds, sr, seed=seed)
    wav[-64:] += np.random.default_rng().uniform(-1e-4, 1e-4, 64).astype(np.float32)
    sf.write(path, np.stack([wav] * channels, 1) if channels > 1 else wav, sr)
    return path


def _name() -> str:
    return f"v{uuid.uuid4().hex[:8]}"


@pytest.fixture
def computations(monkeypatch):
    """Counts the real `prepare_conditionals` runs behind the cache."""
    calls = []
    original = synth.compute_conditionals

    def counting(*args, **kwargs):
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(synth, "compute_conditionals", counting)
    return calls


def _registry_bytes() -> bytes:
    path = config.cache_dir() / "voices" / "voices.json"
    return path.read_bytes() if path.exists() else b""


def _cos(a, b) -> float:
    a, b = a.flatten().float(), b.flatten().float()
    return float(a @ b / (a.norm() * b.norm()))


def test_voice_is_used_and_its_conditionals_are_reused(english_reduced, tmp_path, computations):
    path = _wav(tmp_path / "stereo.wav", sr=44100, channels=2)
    name = _name()
    voice = cnb.voices.add(name, path)
    assert voice.files[0]["channels"] == 2 and voice.files[0]["sample_rate"] == 44100
    assert len(computations) == 1  # the model is in memory: computed at add time

    conds, source, _ = engine.conditionals(english_reduced, cnb.voices.resolve(name).files, config.cache_dir())
    builtin = english_reduced.tts.conds
    assert source == "memory"
    assert not np.allclose(conds.t3.speaker_emb.numpy(), builtin.t3.speaker_emb.numpy())
    assert not np.allclose(conds.gen["embedding"].numpy(), builtin.gen["embedding"].numpy())

    with_voice = cnb.say("Hello there.", voice=name, **SAY)
    again = cnb.say("Hello there.", voice=name, **SAY)
    plain = cnb.say("Hello there.", **SAY)
    assert len(computations) == 1, "the second and third say recomputed the conditionals"
    assert with_voice.timings["voice_source"] == again.timings["voice_source"] == "memory"
    assert plain.timings["voice_source"] == "built-in"
    assert with_voice.params["voice"] == name
    np.testing.assert_array_equal(with_voice.audio, again.audio)  # same seed, same voice
    assert with_voice.audio.shape != plain.audio.shape or not np.array_equal(with_voice.audio, plain.audio)
    # the cached entry is not mutated by generate (exaggeration differs from the stored one)
    cnb.say("Again.", voice=name, exaggeration=0.9, **SAY)
    cached = STATE.voice_conds[(engine.conds_dir(config.cache_dir(), english_reduced).name, voice.files[0]["sha256"])]
    assert float(cached.t3.emotion_adv.flatten()[0]) == pytest.approx(0.5)
    assert cached.t3.cond_prompt_speech_emb is None


def test_plain_file_voice_is_cached_by_content_not_path(english_reduced, tmp_path, computations):
    a = _wav(tmp_path / "a.wav", seed=11)
    b = tmp_path / "copy-of-a.flac"
    b.write_bytes(a.read_bytes())  # same bytes under another name
    root = config.cache_dir()
    first = engine.conditionals(english_reduced, cnb.voices.resolve(str(a)).files, root)
    second = engine.conditionals(english_reduced, cnb.voices.resolve(str(b)).files, root)
    assert (first[1], second[1]) == ("computed", "memory")
    assert len(computations) == 1


def test_disk_cache_survives_memory_loss_and_damage_is_recomputed(english_reduced, tmp_path, computations):
    path = _wav(tmp_path / "d.wav", seed=21)
    files = cnb.voices.resolve(str(path)).files
    root = config.cache_dir()
    computed, _, _ = engine.conditionals(english_reduced, files, root)
    STATE.voice_conds.clear()  # as in a new kernel
    from_disk, source, _ = engine.conditionals(english_reduced, files, root)
    assert source == "disk-cache" and len(computations) == 1
    for key in ("speaker_emb", "cond_prompt_speech_tokens"):
        assert np.array_equal(getattr(computed.t3, key).numpy(), getattr(from_disk.t3, key).numpy())
    assert np.array_equal(computed.gen["prompt_feat"].numpy(), from_disk.gen["prompt_feat"].numpy())

    entry = engine.conds_dir(root, english_reduced) / f"{files[0].sha256}.safetensors"
    data = bytearray(entry.read_bytes())
    data[-7] ^= 0xFF  # one flipped byte inside the tensors: the digest catches it
    entry.write_bytes(bytes(data))
    STATE.voice_conds.clear()
    with pytest.warns(diskcache.CacheWarning, match="damaged"):
        _, source, _ = engine.conditionals(english_reduced, files, root)
    assert source == "computed" and len(computations) == 2
    diskcache.load_conds(english_reduced.spec, entry)  # rewritten whole


def test_changed_file_is_recomputed_and_registry_follows(english_reduced, tmp_path, computations):
    path = _wav(tmp_path / "c.wav", seed=31)
    name = _name()
    old_sha = cnb.voices.add(name, path).files[0]["sha256"]
    _wav(path, seconds=4.0, seed=32)  # the user re-records the file
    u = cnb.say("Changed.", voice=name, **SAY)
    assert u.timings["voice_source"] == "computed" and len(computations) == 2
    record = cnb.voices[name].files[0]
    assert record["sha256"] != old_sha and record["duration_s"] == pytest.approx(4.0, abs=0.01)
    assert cnb.say("Changed.", voice=name, **SAY).timings["voice_source"] == "memory"


def test_blend_lies_between_its_parts(english_reduced, tmp_path):
    a, b = _wav(tmp_path / "a.wav", seed=41), _wav(tmp_path / "b.wav", sr=16000, seed=42, seconds=4.0)
    root = config.cache_dir()
    ca = engine.conditionals(english_reduced, cnb.voices.resolve(str(a)).files, root)[0]
    cb = engine.conditionals(english_reduced, cnb.voices.resolve(str(b)).files, root)[0]
    even = engine.conditionals(english_reduced, cnb.voices.add(_name(), a, b).voice_files(), root)[0]
    leaning = engine.conditionals(english_reduced, cnb.voices.add(_name(), a, b, weights=[3, 1]).voice_files(), root)[0]

    for get in (lambda c: c.t3.speaker_emb, lambda c: c.gen["embedding"]):
        apart = _cos(get(ca), get(cb))
        assert _cos(get(even), get(ca)) > apart and _cos(get(even), get(cb)) > apart
        assert _cos(get(leaning), get(ca)) > _cos(get(even), get(ca))  # 3:1 leans towards a
        assert _cos(get(leaning), get(ca)) > _cos(get(leaning), get(cb))
    assert float(even.t3.speaker_emb.norm()) == pytest.approx(1.0, abs=1e-4)

    # prompts are slices of the parts, joined in order, within one reference's budget
    ta, tb, te = (c.t3.cond_prompt_speech_tokens[0] for c in (ca, cb, even))
    half = len(te) // 2
    assert te.shape[0] <= english_reduced.tts.t3.hp.speech_cond_prompt_len
    assert np.array_equal(te[:half].numpy(), ta[:half].numpy()) and np.array_equal(te[half:].numpy(), tb[: len(te) - half].numpy())
    gen = even.gen
    assert gen["prompt_feat"].shape[1] == 2 * gen["prompt_token"].shape[1] == 2 * int(gen["prompt_token_len"][0])
    u = cnb.say("Blended.", voice=str(tmp_path), **SAY)  # a folder is a blended voice too
    assert u.timings["voice_source"] in ("memory", "disk-cache") and len(u.audio)


BAD_FILES = {
    "missing": (lambda d: d / "nope.wav", "does not exist"),
    "not audio": (lambda d: (d / "text.wav").write_text("hello") and d / "text.wav", r"not audio that .* can read \(Format not recognised"),
    "too short": (lambda d: _wav(d / "short.wav", seconds=0.4), "at least 1 s"),
    "silent": (lambda d: sf.write(d / "silent.wav", np.zeros(48000, np.float32), 24000) or d / "silent.wav", "silent"),
    "empty folder": (lambda d: (d / "empty").mkdir() or d / "empty", "no audio files"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_get_one_sentence_and_change_nothing(english_reduced, tmp_path, case):
    make, message = BAD_FILES[case]
    keep = _name()
    cnb.voices.add(keep, _wav(tmp_path / "good.wav", seed=51))
    before, conds_before = _registry_bytes(), dict(STATE.voice_conds)
    bad = make(tmp_path)
    with pytest.raises(AudioFileError, match=message) as info:
        cnb.voices.add(_name(), bad)
    assert "\n" not in str(info.value)
    if case != "empty folder":
        with pytest.raises(AudioFileError, match=message):
            cnb.say("Hi.", voice=str(bad), **SAY)
    assert _registry_bytes() == before and dict(STATE.voice_conds) == conds_before
    assert keep in cnb.voices


def test_bad_names_weights_and_unknown_voices(english_reduced, tmp_path):
    good = _wav(tmp_path / "g.wav", seed=61)
    cnb.voices.add(known := _name(), good)
    before = _registry_bytes()
    with pytest.raises(InvalidOption, match="not usable"):
        cnb.voices.add("../evil", good)
    with pytest.raises(InvalidOption, match="one weight per file"):
        cnb.voices.add(_name(), good, weights=[1, 2])
    with pytest.raises(InvalidOption, match="positive"):
        cnb.voices.add(_name(), good, weights=[-1])
    with pytest.raises(UnknownVoice, match=f"known voices are .*{known}"):
        cnb.say("Hi.", voice="nobody", **SAY)
    with pytest.raises(UnknownVoice):
        cnb.voices.remove("nobody")
    assert _registry_bytes() == before


def test_remove_forgets_only_unshared_conditionals(english_reduced, tmp_path):
    a, b = _wav(tmp_path / "a.wav", seed=71), _wav(tmp_path / "b.wav", seed=72)
    solo, pair = _name(), _name()
    sha_a = cnb.voices.add(solo, a).files[0]["sha256"]
    sha_b = [f["sha256"] for f in cnb.voices.add(pair, a, b).files][1]
    folder = engine.conds_dir(config.cache_dir(), english_reduced)
    cnb.voices.remove(pair)
    assert pair not in cnb.voices and solo in cnb.voices
    assert (folder / f"{sha_a}.safetensors").is_file()  # still used by `solo`
    assert not (folder / f"{sha_b}.safetensors").exists()


def test_registry_damage_is_warned_and_set_aside(english_reduced, tmp_path, monkeypatch):
    monkeypatch.setattr(config.settings(), "cache_dir", str(tmp_path / "cache"))
    registry = tmp_path / "cache" / "voices" / "voices.json"
    registry.parent.mkdir(parents=True)
    registry.write_text("{not json")
    with pytest.warns(UserWarning, match="damaged"):
        assert len(cnb.voices) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cnb.voices.add("fresh", _wav(tmp_path / "f.wav", seed=81))
    assert json.loads(registry.read_text())["voices"].keys() == {"fresh"}
    assert (registry.parent / "voices.json.damaged").read_text() == "{not json"
    # `cache clear` drops the conditionals (a cache) but keeps the voices (the user's)
    assert cnb.cache.info().voice_bytes > 0
    assert any(name.startswith("voices/conds/english-") for name in cnb.cache.clear())
    left = [p.name for p in (tmp_path / "cache" / "voices" / "conds").iterdir() if not p.name.endswith(".lock")]
    assert "fresh" in cnb.voices and left == []


def test_voice_magic(shell, english_reduced, tmp_path, capsys):
    path = _wav(tmp_path / "m.wav", seed=91)
    name = _name()
    shell.run_line_magic("chatterbox", f"voice add {name} '{path}'")
    assert f"voice {name!r}: 1 file(s)" in capsys.readouterr().out
    table = shell.run_line_magic("chatterbox", "voice list")
    row = next(r for r in table.rows if r["name"] == name)
    assert row["files"] == ["m.wav"] and row["models"] == ["english (dummy weights)"] and row["bytes"] > 0
    assert name in repr(shell.run_line_magic("chatterbox", "status"))
    for bad, message in (
        ("voice", "required"),
        ("voice add onlyname", "required"),
        (f"voice add x '{path}' --weights a", "invalid float"),
        ("voice remove nobody", "Unknown voice"),
        ("voice frobnicate", "invalid choice"),
        (f"voice add bad/name '{path}'", "not usable"),
    ):
        with pytest.raises(UsageError, match=message):
            shell.run_line_magic("chatterbox", bad)
    shell.run_line_magic("chatterbox", f"voice remove {name}")
    assert name not in cnb.voices


@pytest.mark.slow
def test_voice_survives_a_kernel_restart(kernel, tmp_path):
    """A real kernel adds a voice and speaks with it; after a restart the voice is
    found in the registry and its conditionals come from disk, not recomputed."""
    from kernel_utils import Kernel

    path = _wav(tmp_path / "kernel voice.wav", seed=101)
    name = _name()
    say = f'u = %chatterbox say "Hi." -v {name} --weights dummy:reduced --device cpu --max-tokens 4 --seed 1'
    Kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    added = Kernel.text(Kernel.ok(kernel.execute(f"%chatterbox voice add {name} '{path}'")))
    assert f"voice {name!r}: 1 file(s), 3.0 s" in added and "ready for" not in added  # no model yet: lazily
    Kernel.ok(kernel.execute(say))
    assert kernel.value("u.timings['voice_source']") == "computed"
    assert kernel.value("u.params['voice']") == name

    kernel.restart()
    Kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    Kernel.ok(kernel.execute("table = %chatterbox voice list"))
    rows = kernel.value(f"[r for r in table.rows if r['name'] == {name!r}]")
    assert rows and rows[0]["models"] == ["english (dummy weights)"] and rows[0]["duration_s"] == pytest.approx(3.0)
    Kernel.ok(kernel.execute(say))
    assert kernel.value("u.timings['voice_source']") == "disk-cache"
    bad = kernel.execute('%chatterbox say "Hi." -v nobody --weights dummy:reduced --device cpu')
    assert bad["status"] == "error" and bad["reply"]["ename"] == "UsageError"
    assert "known voices are" in bad["reply"]["evalue"] and name in bad["reply"]["evalue"]


def test_disk_full_keeps_conditionals_in_memory(english_reduced, tmp_path, monkeypatch, computations):
    import errno

    def full_disk(conds, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(diskcache, "save_conds", full_disk)
    files = cnb.voices.resolve(str(_wav(tmp_path / "full.wav", seed=111))).files
    with pytest.warns(diskcache.CacheWarning, match="No space left on device"):
        _, source, _ = engine.conditionals(english_reduced, files, config.cache_dir())
    assert source == "computed"
    folder = engine.conds_dir(config.cache_dir(), english_reduced)
    assert not (folder / f"{files[0].sha256}.safetensors").exists() and not list(folder.glob(".*incomplete"))
    assert engine.conditionals(english_reduced, files, config.cache_dir())[1] == "memory"
    assert len(computations) == 1
