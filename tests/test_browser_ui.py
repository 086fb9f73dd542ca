"""The player, the timing widget and the `ui` panel in a real browser (JupyterLab 4,
Debian's chromium via Playwright), reusing test_browser's server fixture.

A notebook runs `%chatterbox say` and `%chatterbox ui`; the test checks in the page
that the audio player, waveform, timings and panel render, then types into the panel
and clicks Generate, which must bring a new player into the panel. Screenshots go to
`<tmp_path>/screenshots`, and also to `$CHATTERBOX_NB_SCREENSHOTS` when set (the README's
pictures are made this way).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, lab, open_notebook  # noqa: F401 - lab is a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium)"),
]

CELLS = [
    "%load_ext chatterbox_nb",
    '%chatterbox say "Hello from the notebook." --max-tokens 4 --seed 1',
    "%chatterbox ui --max-tokens 4 --seed 2",
]


def _write_notebook(path: Path) -> None:
    nb = {
        "cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None} for c in CELLS],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


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


def test_player_timings_and_ui_panel_render_and_generate(lab, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    _write_notebook(tmp_path / "root" / "ui.ipynb")
    dirs = _shots(tmp_path)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 1000},
        )
        try:
            page = context.new_page()
            open_notebook(page, f"{lab}/lab/tree/ui.ipynb")
            page.add_style_tag(content=".Toastify { display: none !important; }")  # the news prompt
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            try:
                page.wait_for_selector(".cnb-ui .cnb-generate", timeout=300_000)
                say_cell = page.locator(".jp-CodeCell").nth(1)
                say_cell.locator("audio").first.wait_for(timeout=10_000)
                assert say_cell.locator(".chatterbox-timings").count() >= 1
                assert say_cell.locator(".cnb-waveform polyline").count() >= 1
                assert say_cell.locator(".chatterbox-timings").first.inner_text().count("RTF") == 1
                _save(say_cell.locator(".jp-OutputArea"), "player.png", dirs)

                panel = page.locator(".cnb-ui")
                assert panel.locator("select").count() >= 3  # model, voice, language
                assert panel.locator(".cnb-ui-result audio").count() == 0
                panel.locator("textarea").fill("Made with the panel.")
                panel.locator(".cnb-generate").click()
                page.wait_for_function(  # busy: the button is disabled and the status line moves
                    "() => document.querySelector('.cnb-ui .cnb-generate').disabled"
                    " && document.querySelector('.cnb-ui').innerText.includes('Generating')",
                    timeout=30_000,
                )
                panel.locator(".cnb-ui-result audio").wait_for(timeout=180_000)
                page.wait_for_function(
                    "() => !document.querySelector('.cnb-ui .cnb-generate').disabled", timeout=60_000
                )
                assert panel.locator(".cnb-ui-result .chatterbox-timings").count() == 1
                assert "done in" in panel.inner_text()
                _save(panel, "ui-panel.png", dirs)
            finally:
                page.screenshot(path=str(dirs[0] / "page.png"), full_page=True)  # kept with a failed test
        finally:
            context.close()
