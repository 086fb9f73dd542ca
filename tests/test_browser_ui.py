"""The player, the progressive player, the `ui` panel and the history table in a real
browser (Debian's chromium via Playwright), in JupyterLab 4 and in Notebook 7, and once
in JupyterLab's dark theme.

One Jupyter server serves both front ends (and one notebook each). The notebook runs a
one-sentence say, a three-sentence `%%chatterbox`, `%chatterbox ui` and `%chatterbox
history`; the test checks in the page that each renders (one visible player per say: the
saved copies are hidden where the widgets render), types into the panel and clicks
Generate, and clicks Replay in the history. Screenshots go to `<tmp>/screenshots`, and
also to `$CHATTERBOX_NB_SCREENSHOTS` when set (the README's pictures are made this way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import needs_chromium
from test_browser import front_end_page, serving

pytestmark = [pytest.mark.slow, needs_chromium]

CELLS = [
    "%load_ext chatterbox_nb",
    '%chatterbox say "Hello from the notebook." --max-tokens 4 --seed 1',
    "%%chatterbox --max-tokens 4 --seed 2\nOne sentence comes first here. Another sentence follows it. A third one ends it.",
    "%chatterbox ui --max-tokens 4 --seed 3",
    "%chatterbox history",
]
#: front end -> (notebook URL path, screenshot prefix); Notebook 7 needs the `notebook` package
FRONT_ENDS = {"notebook": ("notebooks/notebook.ipynb", "notebook7-"), "lab": ("lab/tree/lab.ipynb", "")}



@pytest.fixture(scope="module")
def server(tmp_path_factory, cache_dir):
    """One server for both front ends, one notebook each."""
    with serving(tmp_path_factory.mktemp("frontends"), cache_dir, {f"{n}.ipynb": CELLS for n in FRONT_ENDS}) as url:
        yield url


def _shots(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path / "screenshots"]
    if os.environ.get("CHATTERBOX_NB_SCREENSHOTS"):
        dirs.append(Path(os.environ["CHATTERBOX_NB_SCREENSHOTS"]))
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def _save(locator, name: str, dirs: list[Path]) -> None:
    locator.screenshot(path=str(dirs[0] / name))
    for d in dirs[1:]:
        shutil.copy(dirs[0] / name, d / name)


_AUDIO_READY = """cell => {
  const a = [...cell.querySelectorAll('audio')].filter(e => e.offsetParent !== null);
  return a.length === 1 && a[0].readyState >= 1 && a[0].duration > 0;
}"""

_LUMINANCE = """el => {
  const [r, g, b] = getComputedStyle(el).color.match(/[\\d.]+/g).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}"""


_WATCH_BUSY = """() => {
  window.cnbBusySeen = false;
  const panel = document.querySelector('.cnb-ui');
  const check = () => {
    if (panel.querySelector('.cnb-generate').disabled && panel.innerText.includes('Generating')) window.cnbBusySeen = true;
  };
  new MutationObserver(check).observe(panel, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))  # notebook first: the lab run ends in the dark theme
def test_player_progressive_panel_and_history(server, front_end, tmp_path):
    path, prefix = FRONT_ENDS[front_end]
    dirs = _shots(tmp_path)
    with front_end_page(tmp_path, server, front_end, path, (1100, 1000)) as page:
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_selector(".cnb-history .cnb-replay", timeout=300_000)  # the last cell ran
            cells = page.locator(".jp-CodeCell")

            # the player: one visible <audio> (its saved copy is hidden), its length before playing
            say = cells.nth(1)
            page.wait_for_function(_AUDIO_READY, arg=say.element_handle(), timeout=30_000)
            assert say.locator(".cnb-duration").first.inner_text().strip("· ").startswith("0:0")
            assert say.locator(".chatterbox-timings:visible").count() == 1
            assert say.locator(".cnb-waveform polyline").count() >= 1
            assert say.locator(".chatterbox-timings:visible").first.inner_text().count("RTF") == 1
            _save(say.locator(".jp-OutputArea"), f"{prefix}player.png", dirs)

            # the progressive player: every chunk received and scheduled; its length shown
            page.wait_for_function(
                "() => (window.chatterboxNbPlayers || []).some(r => r.done && r.total === 3 && r.scheduled === 3)",
                timeout=60_000,
            )
            live = cells.nth(2)
            assert "0:0" in live.locator(".cnb-live-status").inner_text()
            assert live.locator("audio:visible").count() == 0 and live.locator(".cnb-saved-only").count() == 1
            hidden = page.evaluate(
                "() => [...document.querySelectorAll('.cnb-saved-only')].map(e => e.offsetParent === null)"
            )
            assert len(hidden) >= 3 and all(hidden)  # say, %%chatterbox, panel: one player each

            # the panel: Generate brings a player into it
            panel = page.locator(".cnb-ui")
            assert panel.locator("select").count() >= 3  # model, voice, language
            assert panel.locator(".cnb-ui-result audio").count() == 0
            panel.locator("textarea").fill("Made with the panel.")
            # busy (the button disabled while the status line says so) is recorded by an observer
            # set before the click, so a say quicker than a poll cannot slip past it
            page.evaluate(_WATCH_BUSY)
            panel.locator(".cnb-generate").click()
            panel.locator(".cnb-ui-result audio").wait_for(timeout=180_000)
            page.wait_for_function(
                "() => !document.querySelector('.cnb-ui .cnb-generate').disabled", timeout=60_000
            )
            assert page.evaluate("() => window.cnbBusySeen") is True
            assert panel.locator(".cnb-ui-result .chatterbox-timings").count() == 1
            assert "done in" in panel.inner_text()
            assert cells.nth(3).locator("audio:visible").count() == 1  # the saved copy stays hidden
            _save(panel, f"{prefix}ui-panel.png", dirs)

            # the history: a row per utterance; Replay shows its player under the table
            history = cells.nth(4)
            assert history.locator(".cnb-replay").count() == 2
            history.locator(".cnb-replay").first.click()
            history.locator("audio").first.wait_for(timeout=30_000)

            if front_end == "lab":  # the same outputs in JupyterLab's dark theme
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
                )
                page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
                dark = (".cnb-banner", ".chatterbox-timings", ".cnb-duration", ".cnb-live-status")
                page.wait_for_function(  # the theme's colours applied: an event, not a pause
                    f"() => {list(dark)}.every(s => ({_LUMINANCE})(document.querySelector(s)) > 0.6)",
                    timeout=30_000,
                )
                for selector in dark:
                    assert say.page.locator(selector).first.evaluate(_LUMINANCE) > 0.6, selector  # light text
                _save(say.locator(".jp-OutputArea"), "player-dark.png", dirs)
                _save(panel, "ui-panel-dark.png", dirs)
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})"
                )
        finally:
            page.screenshot(path=str(dirs[0] / f"{prefix}page.png"), full_page=True)  # kept with a failed test
