"""The progressive player's transcript in a real browser (Debian's chromium via Playwright),
in JupyterLab 4 and Notebook 7: the sentence playing is highlighted, and a click on a
sentence plays on from its start (the player's position, read from its AudioContext's
clock, jumps there). Screenshots mid-play, light and dark, go to `<tmp>/screenshots` and to
`$CHATTERBOX_NB_SCREENSHOTS` when set (docs/transcript-light.png, docs/transcript-dark.png).
"""

from __future__ import annotations

import pytest
from conftest import needs_chromium
from test_browser import CHROMIUM, CHROMIUM_ARGS, notebook_page, serving
from test_browser_ui import _save, _shots

pytestmark = [pytest.mark.slow, needs_chromium]

TEXT = (
    "The first sentence plays at once. The second one is made meanwhile. "
    "A third sentence follows it. And the fourth one ends the cell."
)
CELLS = ["%load_ext chatterbox_nb", f"%%chatterbox --max-tokens 40 --seed 1 --dtype float32\n{TEXT}"]
#: front end -> notebook URL path (Notebook 7 needs the `notebook` package)
FRONT_ENDS = {"notebook": "notebooks/notebook.ipynb", "lab": "lab/tree/lab.ipynb?reset"}  # ?reset: no earlier tabs

_PLAYER = "() => (window.chatterboxNbPlayers || []).find(r => r.total === 4)"
_DONE = "() => (window.chatterboxNbPlayers || []).some(r => r.total === 4 && r.done && r.received === 4)"
_WATCH_DIMMED = """() => {
  window.cnbDimmed = [];
  new MutationObserver(() => {
    const lines = [...document.querySelectorAll('.cnb-transcript .cnb-sentence')];
    const n = lines.filter(l => l.classList.contains('cnb-pending')).length;
    if (lines.length && window.cnbDimmed[window.cnbDimmed.length - 1] !== n) window.cnbDimmed.push(n);
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
}"""
#: click sentence `i` from inside the page and read the player's position 100 ms later (no
#: round trip to the test between the two)
_SEEK = """async i => {
  document.querySelector(`.cnb-sentence[data-index='${i}']`).click();
  await new Promise(r => setTimeout(r, 100));
  const rec = (window.chatterboxNbPlayers || []).find(r => r.total === 4);
  return {position: rec.position, seek: rec.seeks[rec.seeks.length - 1]};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, cache_dir):
    notebooks = {f"{n}.ipynb": CELLS for n in [*FRONT_ENDS, "stop"]}
    with serving(tmp_path_factory.mktemp("transcript"), cache_dir, notebooks) as url:
        yield url


def _playing(page, index: int) -> None:
    """Wait until sentence `index` is heard and highlighted (an event of the page, polled)."""
    page.wait_for_function(
        f"() => {{ const r = ({_PLAYER})(); const l = document.querySelector('.cnb-sentence.cnb-current');"
        f" return r && r.current === {index} && l && l.dataset.index === '{index}'; }}",
        timeout=30_000, polling=20,
    )


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_transcript_follows_the_sound_and_a_click_seeks(server, front_end, tmp_path):
    if front_end == "notebook":
        pytest.importorskip("notebook", minversion="7")

    dirs = _shots(tmp_path)
    with notebook_page(tmp_path, f"{server}/{FRONT_ENDS[front_end]}", (900, 700)) as page:
        page.evaluate(_WATCH_DIMMED)  # before the cell runs: the transcript's lines as they change
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(_DONE, timeout=600_000, polling=200)
            page.wait_for_function("() => document.querySelectorAll('.cnb-sentence.cnb-pending').length === 0",
                                   timeout=30_000)
            texts = page.evaluate("() => [...document.querySelectorAll('.cnb-sentence')].map(l => l.textContent)")
            assert [t.split(" ", 1)[1] for t in texts] == [  # each after its start time
                "The first sentence plays at once.", "The second one is made meanwhile.",
                "A third sentence follows it.", "And the fourth one ends the cell."]
            # dimmed while not made: all four before the first came, then three, ..., then none
            dimmed = page.evaluate("() => window.cnbDimmed")
            assert dimmed[0] == 4 and 3 in dimmed and dimmed[-1] == 0, dimmed
            output = page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea")

            # a click on the first sentence plays from the start; the highlight follows the sound
            page.locator(".cnb-sentence[data-index='0']").click()
            _playing(page, 0)
            _playing(page, 1)
            if front_end == "lab":
                page.mouse.move(0, 0)  # no hover underline in the picture
                _save(output, "transcript-light.png", dirs)

            # a click on the fourth sentence: the sound goes on from its start, and it is highlighted
            ahead = page.evaluate(_SEEK, 3)
            start = ahead["seek"]["start"]
            assert ahead["seek"]["chunk"] == 3 and start > 3.0  # after three sentences and their pauses
            assert start <= ahead["position"] < start + 0.5, ahead  # heard from there, not from the top
            _playing(page, 3)
            # and back: the second sentence, from its start (playing on would never go back)
            back = page.evaluate(_SEEK, 1)
            assert back["seek"]["chunk"] == 1 and 1.0 < back["seek"]["start"] < start
            assert back["seek"]["start"] <= back["position"] < back["seek"]["start"] + 0.5, back
            _playing(page, 1)

            if front_end == "lab":  # mid-play in JupyterLab's dark theme
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
                )
                page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
                page.locator(".cnb-sentence[data-index='1']").click()
                _playing(page, 1)
                page.mouse.move(0, 0)
                _save(output, "transcript-dark.png", dirs)
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})"
                )
        finally:
            page.screenshot(path=str(dirs[0] / f"{front_end}-page.png"), full_page=True)  # kept with a failed test


#: the stop button, pressed from the page the moment the first sentence has reached the player
_STOP_AFTER_FIRST = """() => {
  const timer = setInterval(() => {
    const rec = (window.chatterboxNbPlayers || []).find(r => r.total === 4);
    if (rec && rec.received >= 1) {
      clearInterval(timer);
      window.jupyterapp.commands.execute('notebook:interrupt-kernel');
    }
  }, 20);
}"""


def test_stop_button_keeps_the_made_sentences_readable_and_marks_the_rest(server, tmp_path):

    with notebook_page(tmp_path, f"{server}/lab/tree/stop.ipynb?reset", (1280, 720)) as page:  # not the other tests' tabs and players
        page.evaluate(_STOP_AFTER_FIRST)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(f"() => {{ const r = ({_PLAYER})(); return r && r.done; }}",
                                   timeout=600_000, polling=200)
            lines = page.eval_on_selector_all(".cnb-transcript .cnb-sentence", """els => els.map(e => ({
                text: e.textContent, unmade: e.classList.contains('cnb-unmade'),
                dimmed: getComputedStyle(e).opacity !== '1'}))""")
            status = page.inner_text(".cnb-live-status")
            made = [line for line in lines if not line["unmade"]]
            assert "stopped after chunk" in status and 1 <= len(made) < 4, (status, lines)
            assert lines[:len(made)] == made  # the made ones first, then the rest
            assert all(line["text"][0].isdigit() and not line["dimmed"] for line in made), lines  # time, full ink
            assert all(line["dimmed"] for line in lines[len(made):]), lines  # marked as not made
            # a kept sentence still plays from a click
            page.locator(".cnb-sentence[data-index='0']").click()
            _playing(page, 0)
        finally:
            page.screenshot(path=str(tmp_path / "stop-page.png"), full_page=True)  # kept with a failed test


def test_saved_copy_links_seek_its_audio_without_a_kernel(tmp_path):
    """The saved notebook, converted to HTML and opened offline: a click on a sentence sets
    the copy's `<audio>` to that sentence's start (`Utterance.chunks`) and plays it."""
    import json
    import subprocess
    import sys

    import nbformat
    from nbclient import NotebookClient
    from playwright.sync_api import sync_playwright

    cells = [
        "%load_ext chatterbox_nb",
        "%%chatterbox --weights dummy:reduced --device cpu --dtype float32 --max-tokens 6 --seed 1\n" + TEXT,
        "import json\nprint(json.dumps([c.start for c in _.chunks]))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    starts = json.loads("".join(o.get("text", "") for o in nb.cells[2].outputs if o.output_type == "stream"))
    nbformat.write(nb, tmp_path / "saved.ipynb")
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(tmp_path / "saved.ipynb"),
                    "--output-dir", str(tmp_path)], check=True, capture_output=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(offline=True).new_page()  # no CDN: the widgets cannot render
            page.goto((tmp_path / "saved.html").as_uri())
            page.wait_for_function(
                "() => { const a = document.querySelector('audio'); return a && a.readyState >= 1; }", timeout=30_000)
            links = page.eval_on_selector_all(".cnb-seek", "els => els.map(e => +e.dataset.start)")
            page.locator(".cnb-seek").nth(2).click()
            heard = page.evaluate("() => { const a = document.querySelector('audio');"
                                  " return {time: a.currentTime, paused: a.paused}; }")
        finally:
            browser.close()
    assert len(starts) == 4 and links == [round(s, 3) for s in starts]
    assert starts[2] - 0.001 <= heard["time"] < starts[2] + 0.5 and heard["paused"] is False, heard
