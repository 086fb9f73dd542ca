"""The engine on reduced-size dummy weights: layout, loading, generation, timings."""

from __future__ import annotations

import json

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb.engine.store import build, dummy
from chatterbox_nb.engine import specs
from chatterbox_nb.utterance import TIMING_KEYS

REDUCED = "dummy:reduced"
STAGE_KEYS = ("load_s", "wait_s", "conditioning_s", "t3_s", "s3gen_s", "watermark_s", "other_s")


def test_dummy_checkpoint_uses_official_layout(english_reduced):
    folder = english_reduced.source.folder
    for name in specs.SPECS["english"].files:
        assert (folder / name).is_file(), name
    marker = json.loads((folder / dummy.MARKER).read_text())
    assert marker["model"] == "english" and marker["size"] == "reduced"
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocab["[STOP]"] == 0 and vocab["[START]"] == 255


def test_loaded_model_has_no_meta_tensors(english_reduced):
    tts = english_reduced.tts
    for part in (tts.t3, tts.s3gen, tts.ve):
        assert list(build.iter_meta_tensors(part)) == []


def test_reduced_s3gen_is_upstreams_with_fewer_blocks(english_reduced):
    """The reduced dummy's S3Gen (its estimator, encoders and S3 tokenizer) keeps upstream's
    classes and widths, with the blocks its spec names; the loader reads that shape from the checkpoint's keys, and an official
    checkpoint's keys (upstream's own S3Gen) read as upstream's shape."""
    from chatterbox.models.s3gen import S3Gen

    from chatterbox_nb.engine.store import checkpoint

    spec = specs.SPECS["english"]
    s3gen = english_reduced.tts.s3gen
    estimator = s3gen.flow.decoder.estimator
    assert len(estimator.mid_blocks) == spec.dummy_s3gen_mid_blocks < checkpoint.OFFICIAL_MID_BLOCKS
    for block in (*estimator.down_blocks, *estimator.mid_blocks, *estimator.up_blocks):
        assert len(block[1]) == spec.dummy_s3gen_transformer_blocks < checkpoint.OFFICIAL_TRANSFORMER_BLOCKS
    for name, official_length in checkpoint.OFFICIAL_FRONT_BLOCKS.items():
        assert len(s3gen.get_submodule(name)) == spec.dummy_s3gen_front_blocks < official_length
    keys = list(s3gen.state_dict())
    assert checkpoint.s3gen_shape(keys) == checkpoint.S3GenShape(
        spec.dummy_s3gen_mid_blocks, spec.dummy_s3gen_transformer_blocks, spec.dummy_s3gen_front_blocks)
    with build.quiet_upstream_warnings():
        official = S3Gen()
    assert checkpoint.s3gen_shape(list(official.state_dict())) == checkpoint.S3GenShape()
    for name, official_length in checkpoint.OFFICIAL_FRONT_BLOCKS.items():  # the constants are upstream's
        assert len(official.get_submodule(name)) == official_length
    trimmed = build.trim_s3gen(official, checkpoint.S3GenShape(2, 3, 2))
    estimator = trimmed.flow.decoder.estimator
    assert len(estimator.mid_blocks) == 2 and {len(b[1]) for b in (*estimator.down_blocks, *estimator.up_blocks)} == {3}
    assert checkpoint.s3gen_shape(list(trimmed.state_dict())) == checkpoint.S3GenShape(2, 3, 2)


def test_meta_check_sees_plain_attributes():
    """The check must find what named_buffers() misses, or it proves nothing."""
    import torch

    module = torch.nn.Linear(2, 2)
    module.table = torch.empty(3, device="meta")
    assert list(build.iter_meta_tensors(module)) == ["table"]
    _, t3, s3gen = build.build_empty(specs.SPECS["english"], n_layers=1)
    assert "speech_head.weight" in list(build.iter_meta_tensors(t3))
    # buffers and plain tensors are computed for real by their constructors
    assert not any(name.endswith(("inv_freq", "pe", "freqs_cis", "trim_fade")) for name in build.iter_meta_tensors(s3gen))
    assert not any(name.endswith("inv_freq") for name in build.iter_meta_tensors(t3))


def _say(text="Hello there.", **kw):
    kw.setdefault("max_tokens", 6)
    return cnb.say(text, weights=REDUCED, device="cpu", **kw)


def test_small_tensors_off_the_boundary_are_copied_big_ones_stay_mapped(tmp_path):
    """Where upstream's load would put them (a 64-byte boundary) for the small products whose
    float32 bits depend on it; the big stay views of the one mapped file."""
    import torch
    from safetensors.torch import load_file, save_file

    from chatterbox_nb.engine.store import checkpoint

    big = checkpoint.COPIED_BELOW // 4 + 16  # floats
    save_file({"a": torch.ones(1), "b": torch.randn(100), "c": torch.randn(big), "d": torch.randn(3)},
              tmp_path / "w.safetensors")
    header, start = checkpoint.safetensors_header(tmp_path / "w.safetensors")
    mapped = checkpoint.map_safetensors(tmp_path / "w.safetensors")
    shared = mapped["c"].untyped_storage().data_ptr()  # big: mapped whatever its offset
    kinds = set()
    for name, tensor in mapped.items():
        off = (start + header[name]["data_offsets"][0]) % 64
        small = tensor.numel() * 4 < checkpoint.COPIED_BELOW
        kinds.add((bool(off), small))
        if off and small:
            assert tensor.data_ptr() % 64 == 0 and tensor.untyped_storage().data_ptr() != shared, name
        else:
            assert tensor.untyped_storage().data_ptr() == shared, name  # a view of the mapping
    assert (True, True) in kinds and (True, False) in kinds  # one of each kind off the boundary (b and c)
    assert all(torch.equal(mapped[k], v) for k, v in load_file(tmp_path / "w.safetensors").items())


def test_seeded_say_is_reproducible_and_well_timed(english_reduced):
    a = _say(seed=7)
    b = _say(seed=7)
    c = _say(seed=8)
    assert a.sample_rate == 24000 and a.audio.dtype == np.float32 and a.audio.ndim == 1
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)
    assert 0 < a.timings["speech_tokens"] <= 6
    assert len(a.audio) == a.timings["speech_tokens"] * specs.SAMPLES_PER_TOKEN
    for key in TIMING_KEYS:
        assert key in a.timings, key
    assert a.timings["model_source"] == "memory"
    # The measured stages account for the time: no stage counted twice (their sum stays
    # within the total) and other_s is what they leave (how small it is is a benchmark's figure).
    measured = sum(a.timings[k] for k in STAGE_KEYS if k != "other_s")
    assert measured <= a.timings["total_s"]
    assert a.timings["other_s"] == pytest.approx(a.timings["total_s"] - measured, abs=1e-6), a.timings
    assert a.timings["rtf"] == pytest.approx(a.timings["total_s"] / a.timings["audio_s"])
    assert a.timings["t3_s"] > 0 and a.timings["s3gen_s"] > 0 and a.timings["watermark_s"] > 0
    assert cnb.history[-3:] == [a, b, c]


def test_say_does_not_change_the_builtin_voice(english_reduced):
    conds = english_reduced.tts.conds
    emotion = conds.t3.emotion_adv.clone()
    _say(exaggeration=1.5, seed=1, max_tokens=2)
    assert english_reduced.tts.conds is conds
    assert conds.t3.emotion_adv.equal(emotion)
    assert conds.t3.cond_prompt_speech_emb is None


def test_voice_file_changes_conditionals(english_reduced, tmp_path):
    import soundfile as sf

    ref = tmp_path / "ref.wav"
    sf.write(ref, dummy.synthetic_voice(3.0, sr=16000, seed=5), 16000)
    plain = _say(seed=3, max_tokens=4)
    voiced = _say(seed=3, max_tokens=4, voice=str(ref))
    assert voiced.timings["conditioning_s"] > 0
    assert not np.array_equal(plain.audio, voiced.audio)


def test_save_writes_a_wav(english_reduced, tmp_path):
    import soundfile as sf

    u = _say(seed=2, max_tokens=3, out=tmp_path / "a.wav")
    audio, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    assert sr == 24000 and np.array_equal(audio, u.audio)
    assert u.wav_bytes()[:4] == b"RIFF"


@pytest.mark.parametrize("model, lang", [("turbo", None), ("multilingual", "fr")])
def test_other_models_load_and_speak(model, lang, capfd):
    cnb.load(model, weights=REDUCED, device="cpu", warmup="off", wait=True)
    capfd.readouterr()
    u = cnb.say("Bonjour tout le monde.", model=model, lang=lang, weights=REDUCED, device="cpu", max_tokens=5, seed=0)
    printed = capfd.readouterr()
    assert "Inference" not in printed.out + printed.err and "it/s" not in printed.err  # upstream's bars are off
    assert u.params["model"] == model
    assert u.timings["speech_tokens"] > 0
    assert len(u.audio) > 0 and np.isfinite(u.audio).all()
    cnb.unload(model)
    assert model not in {m.name for m in __import__("chatterbox_nb.engine.models.loader", fromlist=["x"]).loaded_models()}


def test_too_few_tokens_render_as_silence_not_a_crash(english_reduced):
    """S3Gen cannot render fewer than two tokens (a model that stops at once); the
    utterance is that much silence, and the watermarker is not run on nothing."""
    u = _say(max_tokens=1, seed=3)
    assert u.timings["speech_tokens"] <= 1
    assert len(u.audio) == u.timings["speech_tokens"] * specs.SAMPLES_PER_TOKEN and not u.audio.any()
