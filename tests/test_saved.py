"""Saved notebooks keep their audio: every say's output carries a static, playable `<audio>`.

A notebook with a one-sentence say, a three-sentence `%%chatterbox` (the progressive
player) and a `ui` panel result is executed headless (nbclient, which also saves the
widget state) and written to disk. One test reads the saved file; the other converts
it with `nbconvert --to html` and opens the page in chromium with no kernel and no
network: every `<audio>` must be visible and report a non-zero duration.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import needs_chromium
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

W = "--weights dummy:reduced --device cpu"
CELLS = [
    "%load_ext chatterbox_nb",
    f'%chatterbox say "Hello from the notebook." {W} --max-tokens 4 --seed 1',
    f"%%chatterbox {W} --max-tokens 4 --seed 2\n"
    "One sentence comes first here. Another sentence follows it. A third one ends it.",
    "import chatterbox_nb as cnb\n"
    "p = cnb.ui('Made with the panel.', weights='dummy:reduced', device='cpu', max_tokens=4, seed=3)\n"
    "display(p)\n"
    "p.start(); p.wait();",
    # what each say made, in samples, to compare with what the saved file holds
    "import json\nprint(json.dumps([[len(u.audio), u.sample_rate] for u in cnb.history]))",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The notebook, executed and saved (widget state included, as nbclient does)."""
    folder = tmp_path_factory.mktemp("saved")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    path = folder / "saved.ipynb"
    nbformat.write(nb, path)
    return path


def _html_outputs(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]


def test_every_say_keeps_a_static_audio_in_the_saved_file(saved):
    nb = nbformat.read(saved, as_version=4)
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]  # the live players too
    for i, what in ((1, "one-sentence say"), (2, "three-sentence %%chatterbox"), (3, "ui result")):
        copies = [h for h in _html_outputs(nb.cells[i]) if "cnb-saved-only" in h]
        assert len(copies) == 1, (what, nb.cells[i].outputs)
        assert copies[0].count("<audio") == 1 and "data:audio/wav;base64," in copies[0], what
        assert 'preload="metadata"' in copies[0] and "cnb-duration" in copies[0], what
        assert "chatterbox-timings" in copies[0] and "cnb-waveform" in copies[0], what
        widgets = [o for o in nb.cells[i].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widgets and not [o for o in widgets if "text/html" in o["data"]], what  # one player per front end
    assert "Made with the panel." in _html_outputs(nb.cells[3])[0]


def test_the_saved_audio_holds_the_whole_say(saved):
    """Each saved `<audio>` decodes to every sample its say made (not its first chunk or piece)."""
    import base64
    import io
    import json
    import re

    import soundfile as sf

    nb = nbformat.read(saved, as_version=4)
    said = json.loads("".join(o.get("text", "") for o in nb.cells[4].outputs if o.output_type == "stream"))
    assert len(said) == 3, said  # the say, the %%chatterbox cell, the panel's result
    for i, (samples, rate) in zip((1, 2, 3), said):
        (copy,) = [h for h in _html_outputs(nb.cells[i]) if "cnb-saved-only" in h]
        (wav,) = re.findall(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", copy)
        audio, saved_rate = sf.read(io.BytesIO(base64.b64decode(wav)))
        assert saved_rate == rate and len(audio) == samples, (i, len(audio), samples)


@needs_chromium
def test_nbconvert_html_plays_every_say_without_a_kernel(saved, tmp_path):
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(saved), "--output-dir", str(tmp_path)],
        check=True, capture_output=True,
    )
    page_path = tmp_path / "saved.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)  # no CDN: the widgets cannot render
            page = context.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_function(
                "() => { const a = [...document.querySelectorAll('audio')];"
                " return a.length >= 3 && a.every(e => e.readyState >= 1 || e.error); }",
                timeout=30_000,
            )
            found = page.evaluate(
                "() => [...document.querySelectorAll('audio')].map(e => ({duration: e.duration,"
                " error: e.error && e.error.code, visible: e.offsetParent !== null,"
                " label: e.closest('.chatterbox-utterance').querySelector('.cnb-duration').innerText}))"
            )
        finally:
            browser.close()
    assert len(found) == 3, found  # the say, the %%chatterbox cell, the panel's result
    for audio in found:
        assert audio["error"] is None and audio["duration"] > 0 and audio["visible"], found
        assert audio["label"].strip("· ").startswith("0:0"), found


def test_the_saved_copy_never_autoplays_and_shows_the_length():
    import numpy as np

    from chatterbox_nb.display.player import saved_bundle
    from chatterbox_nb.utterance import Utterance

    utt = Utterance(np.zeros(36_000, np.float32), 24_000, "Turn autoplay on", {}, {"total_s": 1.0}, autoplay=True)
    copy = saved_bundle(utt)["text/html"]
    tag = copy.split("<audio", 1)[1].split(">", 1)[0]
    assert "autoplay" not in tag and 'preload="metadata"' in tag  # a reopened notebook stays quiet
    assert "Turn autoplay on" in copy and "0:01.5" in copy
    assert saved_bundle(None)["text/html"] == '<div class="cnb-saved-only"></div>'  # a panel before its first result
    assert "text/html" in utt._repr_mimebundle_()  # outside a kernel the result itself is the static player
