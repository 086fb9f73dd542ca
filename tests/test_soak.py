"""Soak: many consecutive short `say` calls in one real kernel; resident memory after
the first 20 must stay flat (upstream users report leaks of hundreds of MB over a few
generations). CHATTERBOX_NB_SOAK_SAYS sets the count (default 30, so CI stays short);
the long soak, full size and 20 tokens a say, is benchmarks/bench_soak.py. Two CFM steps
instead of ten keep each say short: the same modules run, fewer times."""

from __future__ import annotations

import os

import pytest

from kernel_utils import Kernel
from test_voices import _wav

pytestmark = pytest.mark.slow
SAYS = int(os.environ.get("CHATTERBOX_NB_SOAK_SAYS", "30"))
SETTLE = 20
BOUND_MIB = 64

LOOP = """
import ctypes, gc, psutil, chatterbox_nb as cnb
_rss = {{}}
# glibc keeps freed heap pages (per-thread arenas) resident; trimming hands them back, so
# what RSS still counts is live memory, and a leak is what stays
_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
for _i in range({says}):
    _u = cnb.say("Soak number %d." % _i, voice="soak", weights="{weights}", device="cpu", max_tokens={tokens}, seed=_i, cfm_steps=2)
    if _i + 1 in ({settle}, {says}):
        gc.collect()  # garbage not yet collected is not a leak; what survives this is
        _trim and _trim(0)
        _rss[_i + 1] = psutil.Process().memory_info().rss
_u = None
"""


def test_rss_stays_flat_over_many_says(kernel, tmp_path):
    ok = Kernel.ok
    ok(kernel.execute("%load_ext chatterbox_nb"))
    ok(kernel.execute("%chatterbox load --weights dummy:reduced --device cpu --warmup off --wait"))
    ok(kernel.execute(f"%chatterbox voice add soak '{_wav(tmp_path / 'short.wav', seconds=1.2, seed=401)}'"))
    ok(kernel.execute(LOOP.format(says=SAYS, settle=SETTLE, weights="dummy:reduced", tokens=3), timeout=3600))
    rss = kernel.value("_rss")
    growth = (rss[SAYS] - rss[SETTLE]) / 2**20
    print(f"soak: {SAYS} says; RSS {rss[SETTLE] / 2**20:.0f} MiB after {SETTLE}, {rss[SAYS] / 2**20:.0f} MiB after "
          f"{SAYS}: {growth:+.1f} MiB")
    assert kernel.value("len(__import__('chatterbox_nb').history)") >= SAYS
    assert growth < BOUND_MIB, f"resident memory grew {growth:.0f} MiB over {SAYS - SETTLE} says"
