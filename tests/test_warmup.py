"""Warm-up and background loads in-process (reduced-size dummy)."""

from __future__ import annotations

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb.errors import CheckpointError

REDUCED = "dummy:reduced"


def test_warmup_leaves_seeded_output_unchanged(english_reduced):
    before = cnb.say("Same words.", weights=REDUCED, device="cpu", max_tokens=4, seed=5)
    report = cnb.warmup("english", level="light", weights=REDUCED, device="cpu", report=True, wait=True)
    after = cnb.say("Same words.", weights=REDUCED, device="cpu", max_tokens=4, seed=5)
    assert np.array_equal(before.audio, after.audio)
    m = report.warmup
    assert m["level"] == "light" and m["steps"] == 2
    assert m["cold_s"] > 0 and m["warm_s"] > 0 and m["warmup_s"] > 0
    assert m["cold_over_warm"] == pytest.approx(m["cold_s"] / m["warm_s"])
    assert "memory_overhead_bytes" in m
    assert english_reduced.warmed == "light"


def test_background_failure_surfaces_on_next_say(tmp_path, shell):
    (tmp_path / "ve.safetensors").write_bytes(b"not weights")
    task = cnb.load("english", weights=str(tmp_path), device="cpu", warmup="off")
    with pytest.raises(CheckpointError, match="is missing t3_cfg.safetensors"):
        task.wait(timeout=60)
    assert task.stage == "failed"
    with pytest.raises(CheckpointError, match="is missing t3_cfg.safetensors"):
        cnb.say("Hello", weights=str(tmp_path), device="cpu", max_tokens=2)
    # and through the magic: one line, no traceback
    cnb.load("english", weights=str(tmp_path), device="cpu", warmup="off")
    result = shell.run_cell(f'%chatterbox say "Hello" --weights {tmp_path} --device cpu --max-tokens 2')
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "is missing t3_cfg.safetensors" in str(result.error_in_exec)


def test_unexpected_background_error_is_wrapped_with_its_message(monkeypatch):
    from chatterbox_nb import loading, options
    from chatterbox_nb.tasks import BackgroundError

    def boom(*args, **kwargs):
        raise MemoryError("out of memory while mapping weights")

    monkeypatch.setattr(loading, "load_now", boom)
    task = loading.start(options.choose_model("turbo", REDUCED, "cpu"), "off")
    with pytest.raises(BackgroundError, match="MemoryError: out of memory while mapping weights"):
        task.wait(timeout=60)


def test_autoload_starts_the_default_model_in_the_background(shell, english_reduced):
    from chatterbox_nb import config
    from chatterbox_nb._state import STATE

    s = config.settings()
    saved = {k: getattr(s, k) for k in ("autoload", "weights", "device", "warmup")}
    try:
        s.autoload, s.weights, s.device, s.warmup = True, REDUCED, "cpu", "off"
        key = ("english", REDUCED, "cpu", s.dtype)  # the task is keyed by the choice, as typed (auto)
        STATE.tasks.pop(key, None)
        shell.run_line_magic("reload_ext", "chatterbox_nb")
        task = STATE.tasks[key]
        assert task.wait(timeout=120).source == "memory"  # the session's model, found in memory
    finally:
        for k, v in saved.items():
            setattr(s, k, v)
