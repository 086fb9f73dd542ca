"""The comparison grid in a real browser (Debian's chromium via Playwright), in JupyterLab 4
and Notebook 7, light and dark: the grid is on the page before its first cell is made and
fills cell by cell; a cell's play button plays it. A MutationObserver set before the cells
run records, in order, when the grid appeared and how many players it held at each change
(an order of events, not a timing). Screenshots of the filled grid go to
`<tmp>/screenshots`, and to `$CHATTERBOX_NB_SCREENSHOTS` when set (docs/compare-*.png)."""

from __future__ import annotations


import pytest
from conftest import needs_chromium
from test_browser import front_end_page, serving
from test_browser_ui import _LUMINANCE, _save, _shots

pytestmark = [pytest.mark.slow, needs_chromium]

CELLS = [
    "%load_ext chatterbox_nb",
    '%chatterbox compare "Side by side." --seed 0 1 2 --exaggeration 0.3 0.7 --max-tokens 4 --dtype float32',
]
FRONT_ENDS = {"notebook": ("notebooks/notebook.ipynb", "notebook7-"), "lab": ("lab/tree/lab.ipynb", "")}

#: every change of the page: when a grid first shows, and the players it holds after each change
_RECORD = """() => {
  window.cnbGrid = {events: []};
  const note = () => {
    const grid = document.querySelector('.cnb-compare');
    if (!grid) return;
    const players = grid.querySelectorAll('.cnb-cell audio').length;
    const ev = window.cnbGrid.events;
    if (!ev.length || ev[ev.length - 1] !== players) ev.push(players);
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true});
}"""



@pytest.fixture(scope="module")
def server(tmp_path_factory, cache_dir):
    with serving(tmp_path_factory.mktemp("compare-frontends"), cache_dir, {f"{n}.ipynb": CELLS for n in FRONT_ENDS}) as url:
        yield url


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_the_grid_shows_first_fills_cell_by_cell_and_plays(server, front_end, tmp_path):
    path, prefix = FRONT_ENDS[front_end]
    dirs = _shots(tmp_path)
    with front_end_page(tmp_path, server, front_end, path, (1300, 1000)) as page:
        if front_end == "lab":  # the file browser closed: the grid gets the width (and the screenshot)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        page.evaluate(_RECORD)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            # the grid, or the error the cell printed instead (said at once, not after a timeout)
            page.wait_for_selector(".cnb-compare .cnb-cell, .jp-OutputArea-output[data-mime-type*='stderr']",
                                   timeout=300_000)
            assert page.locator(".cnb-compare .cnb-cell").count() == 6, page.locator(".jp-OutputArea").all_inner_texts()
            page.wait_for_function(
                "() => document.querySelectorAll('.cnb-compare .cnb-cell audio').length === 6", timeout=600_000)
            events = page.evaluate("() => window.cnbGrid.events")
            # the grid was there with no player, then gained them one by one
            assert events[0] == 0 and events[-1] == 6, events
            assert events == sorted(events) and len(events) >= 4, events
            grid = page.locator(".cnb-compare")
            assert grid.locator(".cnb-cell").count() == 6
            # the status is its own widget: its message may land just after the sixth player's
            page.wait_for_function(
                "() => document.querySelector('.cnb-compare .cnb-compare-status').innerText.startsWith('6/6 cells made')",
                timeout=30_000)
            assert "RTF" in grid.locator(".cnb-cell-stats").first.inner_text()
            assert "dBFS" in grid.locator(".cnb-cell-stats").first.inner_text()
            assert page.locator(".cnb-saved-only:visible").count() == 0  # the saved copy hides
            # a cell plays: its play button starts its own <audio>
            grid.locator(".cnb-play").nth(1).click()
            page.wait_for_function(
                "() => { const a = document.querySelectorAll('.cnb-compare .cnb-cell audio')[1];"
                " return a && !a.paused && a.currentTime > 0; }", timeout=30_000)
            assert grid.locator(".cnb-copy").first.get_attribute("data-line").startswith("%chatterbox say ")
            grid.locator(".cnb-play").nth(1).evaluate("b => b.closest('.cnb-cell').querySelector('audio').pause()")
            _save(grid, f"{prefix}compare-light.png", dirs)

            page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
            page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
            page.wait_for_function(
                f"() => ({_LUMINANCE})(document.querySelector('.cnb-compare .cnb-compare-head')) > 0.6", timeout=30_000)
            assert grid.locator(".cnb-cell-stats").first.evaluate(_LUMINANCE) > 0.5
            _save(grid, f"{prefix}compare-dark.png", dirs)
            page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        finally:
            page.screenshot(path=str(dirs[0] / f"{prefix}compare-page.png"), full_page=True)
