"""The product in a real kernel (jupyter_client), on the reduced dummy: the same classes and
code path as full size, whose files tests/test_fullsize.py loads (and compares with upstream's
load) in-process. Full size here cost the suite two minutes: its build, two 2 GB loads and two
says whose S3Gen re-reads a 150-token prompt."""

from __future__ import annotations

import pytest

from kernel_utils import Kernel

_ok = Kernel.ok
pytestmark = pytest.mark.slow


def test_load_ext_is_light(kernel):
    _ok(kernel.execute("%load_ext chatterbox_nb"))
    assert kernel.value("'torch' in __import__('sys').modules") is False


def test_load_say_seed_timings(kernel):
    _ok(kernel.execute("r = %chatterbox load --weights dummy:reduced --device cpu --warmup off --wait"))
    assert kernel.value("r.source") in ("dummy", "disk-cache")  # built now, or by an earlier test
    assert kernel.value("r.dummy") is True

    first = _ok(kernel.execute('u1 = %chatterbox say "Hello from the notebook" --weights dummy:reduced --device cpu --max-tokens 8 --seed 11'))
    kinds = [o["type"] for o in first["outputs"]]
    assert kinds.count("display_data") == 2, kinds  # an assigned say renders too: the player and its saved copy
    assert kernel.value("u1.sample_rate") == 24000
    tokens = kernel.value("u1.timings['speech_tokens']")
    assert 0 < tokens <= 8
    assert kernel.value("len(u1.audio)") == tokens * 960
    keys = kernel.value("sorted(u1.timings)")
    for key in ("model_source", "load_s", "wait_s", "conditioning_s", "t3_s", "speech_tokens", "s3gen_s",
                "watermark_s", "total_s", "audio_s", "rtf", "first_audio_s"):
        assert key in keys
    assert kernel.value("u1.timings['model_source']") == "memory"
    measured, other, total = kernel.value(
        "(sum(u1.timings[k] for k in ('load_s','wait_s','conditioning_s','t3_s','s3gen_s','watermark_s')),"
        " u1.timings['other_s'], u1.timings['total_s'])"
    )
    assert measured <= total and abs(other - (total - measured)) < 1e-6  # the stages account for the time, none twice

    second = _ok(kernel.execute('%chatterbox say "Hello from the notebook" --weights dummy:reduced --device cpu --max-tokens 8 --seed 11'))
    kinds = [o["type"] for o in second["outputs"]]
    assert kinds.count("display_data") == 2, kinds  # the player and its saved copy, once each
    data, saved = (o["data"] for o in second["outputs"] if o["type"] == "display_data")
    assert "application/vnd.jupyter.widget-view+json" in data and "text/html" not in data
    assert "cnb-saved-only" in saved["text/html"]  # hidden where the widget renders
    assert "<audio" in saved["text/html"] and "dummy weights" in saved["text/html"]
    assert kernel.value("(_.audio == u1.audio).all()") is True  # the bare magic's result, same seed


def test_reload_ext_keeps_the_model(kernel):
    _ok(kernel.execute("%reload_ext chatterbox_nb"))
    _ok(kernel.execute("r2 = %chatterbox load --weights dummy:reduced --device cpu --warmup off --wait"))
    assert kernel.value("r2.source") == "memory"
    _ok(kernel.execute("%unload_ext chatterbox_nb\n%load_ext chatterbox_nb"))
    _ok(kernel.execute("r3 = %chatterbox load --weights dummy:reduced --device cpu --warmup off --wait"))
    assert kernel.value("r3.source") == "memory"


def test_restarted_kernel_loads_from_disk_cache(kernel):
    kernel.restart()
    _ok(kernel.execute("%load_ext chatterbox_nb"))
    _ok(kernel.execute("r = %chatterbox load --weights dummy:reduced --device cpu --warmup off --wait"))
    assert kernel.value("r.source") == "disk-cache"
    _ok(kernel.execute('u = %chatterbox say "Back again" --weights dummy:reduced --device cpu --max-tokens 3 --seed 1'))
    assert kernel.value("u.timings['model_source']") == "memory"


def test_usage_error_in_kernel_is_one_line(kernel):
    result = kernel.execute('%chatterbox say ""')
    assert result["status"] == "error"
    assert result["reply"]["ename"] == "UsageError"
    assert "Nothing to say" in result["reply"]["evalue"]
    # one line: the notebook shows the sentence alone, no traceback, no error output with frames
    assert result["reply"]["traceback"] == [] and "\n" not in result["reply"]["evalue"]
    shown = [o for o in result["outputs"] if o["type"] in ("stream", "error", "display_data", "execute_result")]
    assert [(o["type"], o.get("name"), o.get("text")) for o in shown] == [
        ("stream", "stderr", f"UsageError: {result['reply']['evalue']}\n")
    ], shown
    assert kernel.value("len(__import__('chatterbox_nb').history)") == 1
