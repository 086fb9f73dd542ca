"""`--weights hub` offline: one clear sentence, at once (no retries), and nothing lost."""

from __future__ import annotations

import subprocess
import sys

# Upstream's from_pretrained retries offline, sleeping 1, 2, 4, 8 and 8 s between tries (its
# ~23 s): every sleep of a second or more the load takes is counted, whatever the machine's speed.
CODE = """
import time
import chatterbox_nb as cnb
from chatterbox_nb.errors import HubUnavailable
slept, real_sleep = [], time.sleep
def sleep(seconds):
    if seconds >= 1:
        slept.append(seconds)
    real_sleep(seconds)
time.sleep = sleep
try:
    cnb.load("english", weights="hub", device="cpu", wait=True)
except HubUnavailable as exc:
    print("HUB:", exc)
print("RETRY SLEEPS:", len(slept))
"""


def _run(tmp_path, **env):
    import os

    # The hub is a closed port on this machine, so the test means the same with the
    # network up (it never starts a 3 GB download) and down.
    base = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    full_env = {
        **base,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "CHATTERBOX_NB_CACHE_DIR": str(tmp_path / "c"),
        **env,
    }
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=full_env, timeout=120)
    hub, _, sleeps = out.stdout.rpartition("RETRY SLEEPS:")
    assert sleeps, out.stderr[-2000:]
    return hub, int(sleeps)


def test_offline_hub_fails_fast_with_remedies(tmp_path):
    """Upstream's from_pretrained retries for ~23 s offline; ours says so at once."""
    out, sleeps = _run(tmp_path)
    assert sleeps == 0, out
    assert out.startswith("HUB: Cannot reach the Hugging Face hub for ResembleAI/chatterbox")
    for remedy in ("--weights /path/to/checkpoint-folder", "--weights dummy", "HF cache"):
        assert remedy in out
    assert len(out.strip().splitlines()) == 1


def test_hf_hub_offline_is_respected(tmp_path):
    out, sleeps = _run(tmp_path, HF_HUB_OFFLINE="1")
    assert sleeps == 0, out
    assert "HF_HUB_OFFLINE is set" in out


def test_hub_files_in_hf_cache_are_used_offline(tmp_path, english_reduced):
    """A snapshot already in the HF cache loads with no network at all."""
    import os
    import shutil

    repo = tmp_path / "hf" / "hub" / "models--ResembleAI--chatterbox"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in english_reduced.source.folder.iterdir():
        if not f.name.startswith("chatterbox_nb"):
            os.symlink(f, snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    code = "import chatterbox_nb as cnb; r = cnb.load('english', weights='hub', device='cpu', warmup='off', wait=True); print(r.source)"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "CHATTERBOX_NB_CACHE_DIR": str(tmp_path / "c")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "hub", out.stderr[-2000:]
    shutil.rmtree(tmp_path / "hf")
    shutil.rmtree(tmp_path / "c")
