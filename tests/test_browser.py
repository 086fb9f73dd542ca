"""The progressive player in a real browser: JupyterLab 4 in headless chromium (Playwright).

A notebook runs `%%chatterbox` on a several-sentence text; the player records in the
page what it did (`window.chatterboxNbPlayers`). The test asserts from the browser
side that the first chunk was decoded and scheduled for playing while later chunks
were still being generated.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import CHROMIUM, needs_chromium

pytestmark = [pytest.mark.slow, needs_chromium]

TEXT = (
    "The first sentence plays at once. The second one is made meanwhile. "
    "A third sentence follows it. And the fourth one ends the cell."
)
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _notebook(path: Path, cells: list[str] | None = None) -> None:
    cells = cells or ["%load_ext chatterbox_nb", f"%%chatterbox --max-tokens 8 --seed 1\n{TEXT}"]
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None} for c in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(root: Path, tmp: Path, cache_dir: Path) -> Iterator[str]:
    """A Jupyter server on a free port, no token, serving `root`: JupyterLab at /lab and,
    when the `notebook` package is installed, Notebook 7 at /notebooks (one server, both)."""
    port = _free_port()
    config = tmp / "config"
    config.mkdir(parents=True, exist_ok=True)
    # both front ends expose their app as window.jupyterapp, which the tests drive
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"expose_app_in_browser": True}, "JupyterNotebookApp": {"expose_app_in_browser": True},
    }))
    env = {
        **os.environ,
        "CHATTERBOX_NB_WEIGHTS": "dummy:reduced",
        "CHATTERBOX_NB_DEVICE": "cpu",
        "CHATTERBOX_NB_CACHE_DIR": str(cache_dir),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
    }
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--allow-root", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = open(tmp / "lab.log", "wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jupyter lab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory, cache_dir):
    """One JupyterLab server for this module, serving a temporary root folder holding live.ipynb;
    yields (url, root)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    _notebook(root / "live.ipynb")
    with serve(root, tmp, cache_dir) as url:
        yield url, root


@pytest.fixture
def lab(lab_root):
    return lab_root[0]


_READY = """async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  if (!panel || !panel.sessionContext) return false;
  await panel.context.ready;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === "connected";
}"""


def open_notebook(page, url: str) -> None:
    """Open a notebook in JupyterLab and wait until its kernel is connected."""
    page.goto(url)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=120_000)
    deadline = time.monotonic() + 120
    while not page.evaluate(_READY):
        assert time.monotonic() < deadline, "the notebook's kernel did not start"
        time.sleep(0.5)


@contextlib.contextmanager
def serving(tmp: Path, cache_dir: Path, notebooks: dict[str, list[str]]) -> Iterator[str]:
    """`serve` on a fresh folder holding `notebooks` (file name -> its code cells)."""
    root = tmp / "root"
    root.mkdir()
    for name, cells in notebooks.items():
        _notebook(root / name, cells)
    with serve(root, tmp, cache_dir) as url:
        yield url


@contextlib.contextmanager
def notebook_page(tmp_path: Path, url: str, viewport: tuple[int, int] = (1100, 1000)):
    """Chromium (a fresh profile) on the notebook at `url`, its kernel connected and
    JupyterLab's news prompt hidden; yields the page, closes the browser after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            page = context.new_page()
            open_notebook(page, url)
            page.add_style_tag(content=".Toastify { display: none !important; }")  # the news prompt
            yield page
        finally:
            context.close()


@contextlib.contextmanager
def front_end_page(tmp_path: Path, server: str, front_end: str, path: str, viewport: tuple[int, int]):
    """`notebook_page` in JupyterLab or Notebook 7 (skipped without the `notebook` package)."""
    if front_end == "notebook":
        pytest.importorskip("notebook", minversion="7")
    with notebook_page(tmp_path, f"{server}/{path}", viewport) as page:
        yield page


@contextlib.contextmanager
def running(lab: str, tmp_path: Path, notebook: str, done_js: str):
    """Chromium on JupyterLab: `notebook` opened, all its cells run, and `done_js` true; yields the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.new_page()
            open_notebook(page, f"{lab}/lab/tree/{notebook}?reset")  # ?reset: not an earlier test's open tabs
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(done_js, timeout=900_000, polling=500)
            yield page
        finally:
            context.close()


def test_first_chunk_plays_before_the_last_is_made(lab, tmp_path):
    done = "() => (window.chatterboxNbPlayers || []).some(r => r.done && r.received === r.total)"
    with running(lab, tmp_path, "live.ipynb", done) as page:
        (rec,) = page.evaluate("() => window.chatterboxNbPlayers")
        state = page.eval_on_selector(".cnb-live", "el => ({...el.dataset})")
        page.screenshot(path=str(tmp_path / "player.png"))  # kept with a failed test's tmp_path

    assert rec["total"] == 4 and rec["received"] == 4
    assert rec["scheduled"] == 4  # every chunk decoded into a Web Audio buffer and scheduled
    assert rec["firstScheduledReceived"] == 1  # the first played while three were still to come
    assert rec["firstScheduledAt"] < rec["arrivals"][-1]  # before the last chunk existed
    assert rec["state"] == "running"  # the AudioContext really plays
    assert state["scheduled"] == "4" and state["done"] == "true"


ONE_SENTENCE = "This one sentence is played in pieces while it is still being made."


def test_one_sentence_streams_and_no_piece_is_lost_or_played_twice(lab_root, tmp_path):
    """Token streaming: one sentence (one chunk), its pieces played while T3 still samples;
    the player scheduled exactly the samples the kept audio has, each piece once."""
    lab, root = lab_root
    _notebook(root / "stream.ipynb", [
        "%load_ext chatterbox_nb",
        f'u = %chatterbox say "{ONE_SENTENCE}" --max-tokens 60 --seed 2 --stream',  # english on a CPU: asked for
        'print("KEPT", len(u.audio), u.timings["pieces"], u.timings["first_audio_s"] < u.timings["total_s"])',
    ])
    done = "() => (window.chatterboxNbPlayers || []).some(r => r.done && r.scheduled === r.received)"
    with running(lab, tmp_path, "stream.ipynb", done) as page:
        page.wait_for_selector("text=KEPT", timeout=120_000)
        (rec,) = page.evaluate("() => window.chatterboxNbPlayers")
        kept = page.inner_text(".jp-OutputArea-output:has-text('KEPT')").split()

    samples, pieces, early = int(kept[1]), int(kept[2]), kept[3] == "True"
    assert rec["total"] == 1 and rec["received"] == pieces >= 2  # one chunk, several pieces
    assert rec["scheduled"] == pieces and rec["samples"] == samples  # every piece once: the kept audio's length
    assert rec["firstScheduledReceived"] == 1 and rec["firstScheduledAt"] < rec["arrivals"][-1]  # before the end
    assert early and rec["state"] == "running"
