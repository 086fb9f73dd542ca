"""Speed: dtype `auto`, the opt-in lossy knobs, int8, threads, background compilation
(with a stub compiler: the real one takes minutes, see benchmarks/bench_speed.py) and
benchmarks/gpu_check.py on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb.engine import compiled, loader, precision, warmup
from chatterbox_nb.errors import InvalidOption

from conftest import REDUCED

ROOT = Path(__file__).resolve().parents[1]


def test_auto_dtype_is_bfloat16_only_where_native(monkeypatch):
    real = precision.cpu_has_native_bf16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_dtype("auto", "cpu") == "float32"
    assert precision.resolve_dtype("auto", "mps") == "float32"
    assert precision.resolve_dtype("float32", "cpu") == "float32"
    assert precision.resolve_dtype("int8", "cpu") == "int8"
    with pytest.raises(InvalidOption, match="int8 runs on the CPU only"):
        precision.resolve_dtype("int8", "cuda")
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    real.cache_clear()
    if flags:
        assert real() == any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def test_default_say_reports_the_resolved_dtype_and_knobs_change_only_s3gen(english_reduced):
    expected = precision.resolve_dtype("auto", "cpu")
    assert english_reduced.dtype == expected  # the registry key holds the resolved dtype
    kw = dict(weights=REDUCED, device="cpu", max_tokens=4, seed=9)
    u = cnb.say("Knobs.", **kw)
    assert u.params["dtype"] == u.timings["dtype"] == expected and u.timings["model_source"] == "memory"
    assert any(m["dtype"] == expected for m in cnb.status().models)
    if expected == "bfloat16":  # T3 in bfloat16; on the CPU, S3Gen's estimator stays float32
        import torch

        assert english_reduced.tts.t3.speech_emb.weight.dtype == torch.bfloat16
        est = compiled.estimator(english_reduced.tts)
        assert est.dtype == torch.float32 and est.forward.autocast == torch.bfloat16  # weights f32, autocast bf16
        assert english_reduced.entry.name.startswith("english-bfloat16-")

    # the opt-in lossy knobs: T3 (same seed) makes the same tokens, S3Gen renders them otherwise
    plain = u
    fast = cnb.say("Knobs.", cfm_steps=2, prompt_tokens=20, **kw)
    assert fast.params["cfm_steps"] == 2 and fast.params["prompt_tokens"] == 20
    assert "cfm_steps" not in plain.params  # off by default
    assert fast.timings["speech_tokens"] == plain.timings["speech_tokens"]  # T3 is untouched
    assert fast.audio.shape == plain.audio.shape and not np.array_equal(fast.audio, plain.audio)
    for bad, message in (({"cfm_steps": 0}, "--cfm-steps must be between 1 and 50, not 0."),
                         ({"prompt_tokens": "x"}, "--prompt-tokens must be a whole number")):
        with pytest.raises(InvalidOption, match=message):
            cnb.say("Knobs.", **kw, **bad)


def test_shorter_prompt_keeps_token_and_mel_lengths_in_step(english_reduced):
    from chatterbox_nb.engine.synth import shorter_prompt

    gen = english_reduced.tts.conds.gen
    short = shorter_prompt(gen, 30)
    assert short["prompt_token"].shape[1] == 30 and int(short["prompt_token_len"][0]) == 30
    assert short["prompt_feat"].shape[1] == 60
    assert gen["prompt_token"].shape[1] > 30  # the cached voice itself is untouched
    assert shorter_prompt(gen, 10_000) is gen


def test_int8_quantizes_t3_and_speaks():
    import torch

    u = cnb.say("Eight bits.", weights=REDUCED, device="cpu", dtype="int8", max_tokens=3, seed=1)
    (m,) = [m for m in loader.loaded_models() if m.dtype == "int8"]
    try:
        assert u.params["dtype"] == "int8" and u.audio.size > 0
        kinds = {type(mod).__name__ for mod in m.tts.t3.tfmr.modules()}
        assert "Linear" in kinds and not any(isinstance(mod, torch.nn.Linear) for mod in m.tts.t3.tfmr.modules())
        assert m.entry.name.startswith("english-float32-")  # int8 maps the float32 entry
    finally:
        loader.drop(m.key)


def test_threads_never_exceed_the_cores_this_process_may_use():
    import torch

    before = torch.get_num_threads()
    try:
        assert precision.apply_threads(1) == 1 == torch.get_num_threads()
        torch.set_num_threads(512)
        assert precision.apply_threads(0) == precision.cpu_threads() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_background_compile_installs_and_is_remembered(english_reduced, tmp_path, monkeypatch):
    """The compile step (stubbed) installs the compiled forward between says, records
    it in the cache dir, and a later light warm-up compiles again from there; float32
    is never compiled."""
    tts = english_reduced.tts
    calls = []

    def stub(tts_, meanflow=False, mode=None):
        eager = compiled.estimator(tts_).forward
        calls.append(meanflow)

        def fn(*a, **k):
            fn.calls += 1
            return eager(*a, **k)

        fn.calls = 0
        stubs.append(fn)
        return fn, 0.01

    monkeypatch.setattr(compiled, "compile_estimator", stub)
    stubs = []

    def calls_of(tts_):
        return stubs[-1].calls
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    if english_reduced.dtype == "float32":
        assert warmup.compile_step(english_reduced, "full", tmp_path, print) == {}
        pytest.skip("no native bfloat16 here: nothing is compiled")
    try:
        assert warmup.compile_step(english_reduced, "light", tmp_path, print) == {}  # light: not before a full one
        assert warmup.compile_step(english_reduced, "full", tmp_path, print) == {"compile_s": 0.01}
        assert compiled.is_installed(tts) and compiled.compiled_before(tmp_path, "english", "cpu", english_reduced.dtype)
        u = cnb.say("Compiled.", weights=REDUCED, device="cpu", max_tokens=3, seed=2)
        assert calls_of(tts) == 10  # upstream's 10 CFM steps went through it
        assert u.audio.size > 0
        compiled.uninstall(tts)
        assert not compiled.is_installed(tts) and getattr(compiled.estimator(tts).forward, "autocast", None)
        assert warmup.compile_step(english_reduced, "light", tmp_path, print) == {"compile_s": 0.01}
        assert len(calls) == 2
    finally:
        compiled.uninstall(tts)
    assert not compiled.wanted("float32") and compiled.wanted("bfloat16") and compiled.wanted("int8")


def test_gpu_check_runs_on_the_cpu(cache_dir):
    env = {**os.environ, "CHATTERBOX_NB_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--weights", REDUCED,
         "--max-tokens", "3", "--no-compile", "--quick"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["float32_identical"] is True
    assert [r["config"] for r in result["rows"]] == ["float32 eager", "bfloat16 eager"]
    assert all(r["tokens"] == 3 and r["t3_tokens_per_s"] > 0 and r["s3gen_s"] > 0 for r in result["rows"])
